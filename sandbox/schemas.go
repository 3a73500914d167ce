package sandbox

import "strings"

// RFC 7643/7644 URNs.
const (
	coreUserURN   = "urn:ietf:params:scim:schemas:core:2.0:User"
	coreGroupURN  = "urn:ietf:params:scim:schemas:core:2.0:Group"
	enterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	listURN       = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	patchOpURN    = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	errorURN      = "urn:ietf:params:scim:api:messages:2.0:Error"
	spcURN        = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	schemaURN     = "urn:ietf:params:scim:schemas:core:2.0:Schema"
	rtURN         = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
)

// EnterpriseURN is the enterprise User extension (department, employeeNumber, manager).
const EnterpriseURN = enterpriseURN

// maxResults is the most resources one list page returns.
const maxResults = 500

// attr describes one attribute the way /Schemas serves it.
type attr struct {
	Name          string `json:"name"`
	Type          string `json:"type"`
	MultiValued   bool   `json:"multiValued"`
	Required      bool   `json:"required"`
	CaseExact     bool   `json:"caseExact"`
	Mutability    string `json:"mutability"`
	Returned      string `json:"returned"`
	Uniqueness    string `json:"uniqueness"`
	SubAttributes []attr `json:"subAttributes,omitempty"`
}

func str(name string) attr {
	return attr{Name: name, Type: "string", Mutability: "readWrite", Returned: "default", Uniqueness: "none"}
}

func complexAttr(name string, multi bool, subs ...attr) attr {
	a := str(name)
	a.Type, a.MultiValued, a.SubAttributes = "complex", multi, subs
	return a
}

// typed is a multi-valued attribute of typed items (emails, phoneNumbers).
func typed(name string, subs ...string) attr {
	var sa []attr
	for _, s := range append(subs, "type", "display") {
		sa = append(sa, str(s))
	}
	primary := str("primary")
	primary.Type = "boolean"
	return complexAttr(name, true, append(sa, primary)...)
}

func with(a attr, f func(*attr)) attr {
	f(&a)
	return a
}

func userSchema() []attr {
	return []attr{
		with(str("userName"), func(a *attr) { a.Required, a.Uniqueness = true, "server" }),
		complexAttr("name", false, str("formatted"), str("familyName"), str("givenName"), str("middleName"),
			str("honorificPrefix"), str("honorificSuffix")),
		str("displayName"), str("nickName"), with(str("profileUrl"), func(a *attr) { a.Type = "reference" }),
		str("title"), str("userType"), str("preferredLanguage"), str("locale"), str("timezone"),
		with(str("active"), func(a *attr) { a.Type = "boolean" }),
		with(str("password"), func(a *attr) { a.Mutability, a.Returned = "writeOnly", "never" }),
		typed("emails", "value"), typed("phoneNumbers", "value"), typed("ims", "value"), typed("photos", "value"),
		typed("addresses", "formatted", "streetAddress", "locality", "region", "postalCode", "country"),
		with(complexAttr("groups", true, str("value"), str("$ref"), str("display"), str("type")),
			func(a *attr) { a.Mutability = "readOnly" }),
		typed("entitlements", "value"), typed("roles", "value"), typed("x509Certificates", "value"),
	}
}

func enterpriseSchema() []attr {
	return []attr{
		str("employeeNumber"), str("costCenter"), str("organization"), str("division"), str("department"),
		complexAttr("manager", false, str("value"), with(str("$ref"), func(a *attr) { a.Type = "reference" }),
			with(str("displayName"), func(a *attr) { a.Mutability = "readOnly" })),
	}
}

func groupSchema() []attr {
	return []attr{
		with(str("displayName"), func(a *attr) { a.Required, a.Uniqueness = true, "server" }),
		complexAttr("members", true, str("value"), with(str("$ref"), func(a *attr) { a.Type = "reference" }),
			str("display"), str("type")),
	}
}

// known reports whether name is a top-level attribute of the schema.
func known(schema []attr, name string) *attr {
	for i := range schema {
		if strings.EqualFold(schema[i].Name, name) {
			return &schema[i]
		}
	}
	return nil
}

func schemaResource(id, name, desc string, attrs []attr, base string) object {
	return object{
		"schemas": []any{schemaURN}, "id": id, "name": name, "description": desc, "attributes": attrs,
		"meta": object{"resourceType": "Schema", "location": base + "/Schemas/" + id},
	}
}

func schemas(base string) []object {
	return []object{
		schemaResource(coreUserURN, "User", "User Account", userSchema(), base),
		schemaResource(enterpriseURN, "EnterpriseUser", "Enterprise User", enterpriseSchema(), base),
		schemaResource(coreGroupURN, "Group", "Group", groupSchema(), base),
	}
}

func resourceTypes(base string) []object {
	return []object{
		{
			"schemas": []any{rtURN}, "id": "User", "name": "User", "endpoint": "/Users", "description": "User Account",
			"schema": coreUserURN, "schemaExtensions": []any{object{"schema": enterpriseURN, "required": false}},
			"meta": object{"resourceType": "ResourceType", "location": base + "/ResourceTypes/User"},
		},
		{
			"schemas": []any{rtURN}, "id": "Group", "name": "Group", "endpoint": "/Groups", "description": "Group",
			"schema": coreGroupURN, "meta": object{"resourceType": "ResourceType", "location": base + "/ResourceTypes/Group"},
		},
	}
}

func serviceProviderConfig(base string) object {
	off := object{"supported": false}
	return object{
		"schemas":          []any{spcURN},
		"documentationUri": "https://github.com/jml-dev/jml/blob/main/docs/quickstart.md",
		"patch":            object{"supported": true},
		"bulk":             object{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           object{"supported": true, "maxResults": maxResults},
		"changePassword":   object{"supported": true},
		"sort":             off,
		"etag":             off,
		"authenticationSchemes": []any{object{
			"type": "oauthbearertoken", "name": "Bearer token", "primary": true,
			"description": "Authorization: Bearer <the token in the data dir's sandbox/token file>",
		}},
		"meta": object{"resourceType": "ServiceProviderConfig", "location": base + "/ServiceProviderConfig"},
	}
}
