package sandbox

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// BasePath is where the SCIM endpoints are mounted.
const BasePath = "/scim/v2"

const maxBody = 1 << 20

// Handler serves the directory's SCIM API under BasePath. Every request
// needs Authorization: Bearer <token>.
func (d *Directory) Handler(token string) http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, f func(r *http.Request) (int, any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			status, body, err := f(r)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, status, body)
		})
	}
	h("GET "+BasePath+"/ServiceProviderConfig", func(r *http.Request) (int, any, error) {
		return http.StatusOK, serviceProviderConfig(base(r)), nil
	})
	h("GET "+BasePath+"/Schemas", func(r *http.Request) (int, any, error) {
		return http.StatusOK, listOf(schemas(base(r)), 1, len(schemas(base(r)))), nil
	})
	h("GET "+BasePath+"/Schemas/{id}", func(r *http.Request) (int, any, error) {
		return byID(schemas(base(r)), r.PathValue("id"), "Schema")
	})
	h("GET "+BasePath+"/ResourceTypes", func(r *http.Request) (int, any, error) {
		return http.StatusOK, listOf(resourceTypes(base(r)), 1, 2), nil
	})
	h("GET "+BasePath+"/ResourceTypes/{id}", func(r *http.Request) (int, any, error) {
		return byID(resourceTypes(base(r)), r.PathValue("id"), "ResourceType")
	})

	h("GET "+BasePath+"/Users", func(r *http.Request) (int, any, error) { return d.list(r, "Users", d.Users) })
	h("POST "+BasePath+"/Users", func(r *http.Request) (int, any, error) {
		return d.write(r, http.StatusCreated, "Users", func(b object) (object, error) { return d.CreateUser(b) })
	})
	h("GET "+BasePath+"/Users/{id}", func(r *http.Request) (int, any, error) {
		return d.read(r, "Users", d.User)
	})
	h("PUT "+BasePath+"/Users/{id}", func(r *http.Request) (int, any, error) {
		return d.write(r, http.StatusOK, "Users", func(b object) (object, error) { return d.ReplaceUser(r.PathValue("id"), b) })
	})
	h("PATCH "+BasePath+"/Users/{id}", func(r *http.Request) (int, any, error) {
		return d.patch(r, "Users", d.PatchUser)
	})
	h("DELETE "+BasePath+"/Users/{id}", func(r *http.Request) (int, any, error) {
		return http.StatusNoContent, nil, d.DeleteUser(r.PathValue("id"))
	})

	h("GET "+BasePath+"/Groups", func(r *http.Request) (int, any, error) { return d.list(r, "Groups", d.Groups) })
	h("POST "+BasePath+"/Groups", func(r *http.Request) (int, any, error) {
		return d.write(r, http.StatusCreated, "Groups", func(b object) (object, error) { return d.CreateGroup(b) })
	})
	h("GET "+BasePath+"/Groups/{id}", func(r *http.Request) (int, any, error) {
		return d.read(r, "Groups", d.Group)
	})
	h("PUT "+BasePath+"/Groups/{id}", func(r *http.Request) (int, any, error) {
		return d.write(r, http.StatusOK, "Groups", func(b object) (object, error) { return d.ReplaceGroup(r.PathValue("id"), b) })
	})
	h("PATCH "+BasePath+"/Groups/{id}", func(r *http.Request) (int, any, error) {
		return d.patch(r, "Groups", d.PatchGroup)
	})
	h("DELETE "+BasePath+"/Groups/{id}", func(r *http.Request) (int, any, error) {
		return http.StatusNoContent, nil, d.DeleteGroup(r.PathValue("id"))
	})
	h(BasePath+"/", func(r *http.Request) (int, any, error) {
		return 0, nil, errorf(http.StatusNotFound, "", "no endpoint %s %s", r.Method, r.URL.Path)
	})
	return requireBearer(token, mux)
}

// requireBearer answers 401 unless the request carries the token.
func requireBearer(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="jml sandbox"`)
			writeError(w, errorf(http.StatusUnauthorized, "", "missing or wrong bearer token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func base(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + BasePath
}

func byID(list []object, id, kind string) (int, any, error) {
	for _, o := range list {
		if strings.EqualFold(o["id"].(string), id) {
			return http.StatusOK, o, nil
		}
	}
	return 0, nil, notFound(kind, id)
}

func listOf(items []object, start, total int) object {
	res := make([]any, len(items))
	for i, it := range items {
		res[i] = it
	}
	return object{"schemas": []any{listURN}, "totalResults": total, "startIndex": start,
		"itemsPerPage": len(items), "Resources": res}
}

// view adds meta for the client and applies attributes/excludedAttributes.
func view(r *http.Request, o object, endpoint string) object {
	resourceType := strings.TrimSuffix(endpoint, "s")
	meta, _ := o["meta"].(map[string]any)
	out := object{}
	for k, v := range o {
		out[k] = v
	}
	m := object{"resourceType": resourceType, "location": base(r) + "/" + endpoint + "/" + o["id"].(string)}
	if meta != nil {
		m["created"], m["lastModified"] = meta["created"], meta["lastModified"]
		if v, ok := meta["version"].(float64); ok {
			m["version"] = fmt.Sprintf(`W/"%d"`, int(v))
		}
	}
	out["meta"] = m
	q := r.URL.Query()
	if attrs := splitList(q.Get("attributes")); len(attrs) > 0 {
		keep := object{"schemas": out["schemas"], "id": out["id"], "meta": out["meta"]}
		for _, a := range attrs {
			p := parsePath(a)
			if p.urn != "" {
				if ext, ok := get(out, p.urn).(map[string]any); ok {
					k := keep[p.urn]
					if k == nil {
						k = object{}
						keep[p.urn] = k
					}
					if v := get(ext, p.attr); v != nil {
						k.(object)[keyOf(ext, p.attr)] = v
					}
				}
				continue
			}
			if v := get(out, p.attr); v != nil {
				keep[keyOf(out, p.attr)] = v
			}
		}
		out = keep
	}
	for _, a := range splitList(q.Get("excludedAttributes")) {
		p := parsePath(a)
		if p.urn != "" {
			if ext, ok := get(out, p.urn).(map[string]any); ok {
				ext = clone(ext)
				delete(ext, keyOf(ext, p.attr))
				out[keyOf(out, p.urn)] = ext
			}
			continue
		}
		if !strings.EqualFold(p.attr, "id") && !strings.EqualFold(p.attr, "schemas") {
			delete(out, keyOf(out, p.attr))
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (d *Directory) list(r *http.Request, endpoint string, all func(filter) []object) (int, any, error) {
	q := r.URL.Query()
	var f filter
	if src := q.Get("filter"); src != "" {
		var err error
		if f, err = parseFilter(src); err != nil {
			return 0, nil, errorf(http.StatusBadRequest, "invalidFilter", "filter: %v", err)
		}
	}
	start, count := 1, 100
	if s := q.Get("startIndex"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, nil, errorf(http.StatusBadRequest, "invalidValue", "startIndex: not a number")
		}
		start = max(n, 1) // RFC 7644 §3.4.2.4: less than 1 means 1
	}
	if s := q.Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, nil, errorf(http.StatusBadRequest, "invalidValue", "count: not a number")
		}
		count = min(max(n, 0), maxResults)
	}
	var items []object
	if name, ok := userNameEq(q.Get("filter")); ok && endpoint == "Users" {
		if u, found := d.UserByName(name); found {
			items = []object{u}
		}
	} else {
		items = all(f)
	}
	total := len(items)
	lo := min(start-1, total)
	hi := min(lo+count, total)
	page := make([]object, 0, hi-lo)
	for _, it := range items[lo:hi] {
		page = append(page, view(r, it, endpoint))
	}
	return http.StatusOK, listOf(page, start, total), nil
}

func (d *Directory) read(r *http.Request, endpoint string, get func(string) (object, error)) (int, any, error) {
	o, err := get(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, view(r, o, endpoint), nil
}

func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return errorf(http.StatusBadRequest, "invalidSyntax", "body: %v", err)
	}
	if len(b) > maxBody {
		return errorf(http.StatusRequestEntityTooLarge, "tooLarge", "body: more than %d bytes", maxBody)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errorf(http.StatusBadRequest, "invalidSyntax", "body: not a JSON object: %v", err)
	}
	return nil
}

func (d *Directory) write(r *http.Request, status int, endpoint string, f func(object) (object, error)) (int, any, error) {
	var body object
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	o, err := f(body)
	if err != nil {
		return 0, nil, err
	}
	return status, view(r, o, endpoint), nil
}

func (d *Directory) patch(r *http.Request, endpoint string, f func(string, []patchOp) (object, error)) (int, any, error) {
	var body struct {
		Schemas    []string  `json:"schemas"`
		Operations []patchOp `json:"Operations"`
	}
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	found := false
	for _, s := range body.Schemas {
		found = found || strings.EqualFold(s, patchOpURN)
	}
	if !found {
		return 0, nil, errorf(http.StatusBadRequest, "invalidSyntax", "schemas: must list %s", patchOpURN)
	}
	o, err := f(r.PathValue("id"), body.Operations)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, view(r, o, endpoint), nil
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	if status == http.StatusNoContent || body == nil {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = errorf(http.StatusInternalServerError, "", "internal error")
	}
	body := object{"schemas": []any{errorURN}, "status": strconv.Itoa(ae.status), "detail": ae.detail}
	if ae.scimType != "" {
		body["scimType"] = ae.scimType
	}
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(ae.status)
	_ = json.NewEncoder(w).Encode(body)
}
