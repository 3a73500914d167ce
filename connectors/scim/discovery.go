package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jml-dev/jml/connectors"
)

const (
	coreUserURN   = "urn:ietf:params:scim:schemas:core:2.0:User"
	coreGroupURN  = "urn:ietf:params:scim:schemas:core:2.0:Group"
	enterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	patchOpURN    = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	bulkURN       = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
)

// Capabilities is what the service provider said about itself in
// /ServiceProviderConfig.
type Capabilities struct {
	Patch, Bulk, Filter, Sort, ETag bool
	MaxResults                      int // filter.maxResults; 0 = not stated
	BulkMaxOperations               int
	// SchemasDiscovered is false when /Schemas was unavailable and the
	// RFC 7643 core and enterprise schemas are assumed.
	SchemasDiscovered bool
}

type discovery struct {
	caps   Capabilities
	schema *schemaIndex
}

// attrDef is one attribute of a schema, as /Schemas describes it.
type attrDef struct {
	Name          string    `json:"name"`
	Type          string    `json:"type"`
	MultiValued   bool      `json:"multiValued"`
	Mutability    string    `json:"mutability"`
	SubAttributes []attrDef `json:"subAttributes"`
}

func (a *attrDef) sub(name string) *attrDef {
	for i := range a.SubAttributes {
		if strings.EqualFold(a.SubAttributes[i].Name, name) {
			return &a.SubAttributes[i]
		}
	}
	return nil
}

type schemaDef struct {
	ID         string    `json:"id"`
	Attributes []attrDef `json:"attributes"`
}

// schemaIndex answers "which SCIM attribute does this normalized name mean".
type schemaIndex struct {
	schemas map[string]map[string]*attrDef // lower(URN) → lower(attribute) → definition
	urns    map[string]string              // lower(URN) → URN as declared
	// byNorm maps a normalized full name, e.g.
	// urn_ietf_params_scim_schemas_extension_enterprise_2_0_user_department,
	// to its extension attribute.
	byNorm map[string]ref
}

type ref struct{ urn, attr, sub string }

func newSchemaIndex(defs []schemaDef) *schemaIndex {
	ix := &schemaIndex{schemas: map[string]map[string]*attrDef{}, urns: map[string]string{}, byNorm: map[string]ref{}}
	for _, s := range defs {
		if s.ID == "" || strings.EqualFold(s.ID, coreGroupURN) {
			continue
		}
		attrs := map[string]*attrDef{}
		for i := range s.Attributes {
			a := &s.Attributes[i]
			attrs[strings.ToLower(a.Name)] = a
			if strings.EqualFold(s.ID, coreUserURN) {
				continue
			}
			// Veza lower-cases attribute names (…_user_costcenter); the
			// snake_case spelling (…_user_cost_center) is accepted too.
			for _, full := range []string{normalize(s.ID + ":" + a.Name), normalize(s.ID) + "_" + normalize(snake(a.Name))} {
				if a.Type != "complex" {
					ix.byNorm[full] = ref{urn: s.ID, attr: a.Name}
					continue
				}
				if !a.MultiValued && a.sub("value") != nil {
					ix.byNorm[full] = ref{s.ID, a.Name, a.sub("value").Name}
				}
				for _, sa := range a.SubAttributes {
					ix.byNorm[full+"_"+normalize(sa.Name)] = ref{s.ID, a.Name, sa.Name}
				}
			}
		}
		ix.schemas[strings.ToLower(s.ID)] = attrs
		ix.urns[strings.ToLower(s.ID)] = s.ID
	}
	return ix
}

func (ix *schemaIndex) attr(urn, name string) *attrDef {
	return ix.schemas[strings.ToLower(urn)][strings.ToLower(name)]
}

// normalize lower-cases s and turns every run of other characters than
// letters and digits into one underscore, as Veza names extension attributes.
func normalize(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			under = false
		} else if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	return strings.TrimRight(b.String(), "_")
}

// Discover reads /ServiceProviderConfig and /Schemas unless already done and
// returns what the target supports. Other calls discover lazily; call it to
// check a target's URL and credentials up front.
func (c *Client) Discover(ctx context.Context) (Capabilities, error) {
	d, err := c.discover(ctx)
	if err != nil {
		return Capabilities{}, err
	}
	return d.caps, nil
}

func (c *Client) discover(ctx context.Context) (*discovery, error) {
	c.mu.Lock()
	d := c.disc
	c.mu.Unlock()
	if d != nil {
		return d, nil
	}
	select {
	case c.discovering <- struct{}{}:
		defer func() { <-c.discovering }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	d = c.disc
	c.mu.Unlock()
	if d != nil { // discovered while this call waited
		return d, nil
	}
	var spc struct {
		Patch struct{ Supported bool } `json:"patch"`
		Bulk  struct {
			Supported     bool `json:"supported"`
			MaxOperations int  `json:"maxOperations"`
		} `json:"bulk"`
		Filter struct {
			Supported  bool `json:"supported"`
			MaxResults int  `json:"maxResults"`
		} `json:"filter"`
		Sort struct{ Supported bool } `json:"sort"`
		ETag struct{ Supported bool } `json:"etag"`
	}
	d = &discovery{}
	err := c.do(ctx, request{op: "read service provider config", method: "GET", path: "/ServiceProviderConfig"}, &spc)
	switch {
	case err == nil:
		d.caps = Capabilities{Patch: spc.Patch.Supported, Bulk: spc.Bulk.Supported, Filter: spc.Filter.Supported,
			Sort: spc.Sort.Supported, ETag: spc.ETag.Supported, MaxResults: spc.Filter.MaxResults,
			BulkMaxOperations: spc.Bulk.MaxOperations}
	case errors.Is(err, connectors.ErrNotFound):
		// RFC 7644 makes the endpoint mandatory, yet some providers omit
		// it; PATCH and filtering are what nearly all of them support.
		d.caps = Capabilities{Patch: true, Filter: true}
	default:
		return nil, err
	}

	defs, err := c.readSchemas(ctx)
	switch {
	case err == nil && len(defs) > 0:
		d.schema = newSchemaIndex(defs)
		d.caps.SchemasDiscovered = true
	case err == nil || errors.Is(err, connectors.ErrNotFound) || isType(err, "ScimUnsupported"):
		d.schema = newSchemaIndex(rfcSchemas())
	default:
		return nil, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disc == nil {
		c.disc = d
	}
	return c.disc, nil
}

func (c *Client) readSchemas(ctx context.Context) ([]schemaDef, error) {
	var raw json.RawMessage
	if err := c.do(ctx, request{op: "read schemas", method: "GET", path: "/Schemas"}, &raw); err != nil {
		return nil, err
	}
	var list struct {
		Resources []schemaDef `json:"Resources"`
	}
	if err := json.Unmarshal(raw, &list); err == nil && list.Resources != nil {
		return list.Resources, nil
	}
	// Some providers answer with a bare array.
	var defs []schemaDef
	if err := json.Unmarshal(raw, &defs); err != nil {
		return nil, connectors.Transient(fmt.Errorf("scim: read schemas: unexpected answer: %w", err))
	}
	return defs, nil
}

func isType(err error, typ string) bool {
	var p *connectors.PermanentError
	return errors.As(err, &p) && p.Type == typ
}

// rfcSchemas is the RFC 7643 User and enterprise extension schema, assumed
// when a provider does not serve /Schemas.
func rfcSchemas() []schemaDef {
	str := func(n string) attrDef { return attrDef{Name: n, Type: "string"} }
	multi := func(n string, subs ...string) attrDef {
		a := attrDef{Name: n, Type: "complex", MultiValued: true}
		for _, s := range append(subs, "type") {
			a.SubAttributes = append(a.SubAttributes, str(s))
		}
		a.SubAttributes = append(a.SubAttributes, attrDef{Name: "primary", Type: "boolean"})
		return a
	}
	return []schemaDef{
		{ID: coreUserURN, Attributes: []attrDef{
			str("userName"),
			{Name: "name", Type: "complex", SubAttributes: []attrDef{str("formatted"), str("familyName"), str("givenName"),
				str("middleName"), str("honorificPrefix"), str("honorificSuffix")}},
			str("displayName"), str("nickName"), {Name: "profileUrl", Type: "reference"}, str("title"), str("userType"),
			str("preferredLanguage"), str("locale"), str("timezone"), {Name: "active", Type: "boolean"},
			{Name: "password", Type: "string", Mutability: "writeOnly"},
			multi("emails", "value", "display"), multi("phoneNumbers", "value", "display"), multi("ims", "value", "display"),
			multi("photos", "value", "display"),
			multi("addresses", "formatted", "streetAddress", "locality", "region", "postalCode", "country"),
			multi("entitlements", "value", "display"), multi("roles", "value", "display"),
		}},
		{ID: enterpriseURN, Attributes: []attrDef{
			str("employeeNumber"), str("costCenter"), str("organization"), str("division"), str("department"),
			{Name: "manager", Type: "complex", SubAttributes: []attrDef{str("value"), {Name: "$ref", Type: "reference"},
				{Name: "displayName", Type: "string", Mutability: "readOnly"}}},
		}},
	}
}

// ValidateAttributes checks that every normalized name maps to a writable
// place in the target's schemas, so a policy can be checked before any
// event runs. The error names every attribute that does not.
func (c *Client) ValidateAttributes(ctx context.Context, names ...string) error {
	d, err := c.discover(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if _, err := d.schema.resolve(n); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return connectors.Permanent("ScimMapping", errors.Join(errs...))
}
