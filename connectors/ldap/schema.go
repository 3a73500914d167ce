package ldap

import (
	"encoding/binary"
	"fmt"
	"strings"

	ldapv3 "github.com/go-ldap/ldap/v3"
	"github.com/google/uuid"

	"github.com/jml-dev/jml/connectors"
)

// attr is one mapped attribute: the normalized name, the directory's.
type attr struct {
	name    string
	wire    string
	aliases []string
}

// schema is what differs between the flavours.
type schema struct {
	flavour      Flavour
	userClasses  []string
	groupClasses []string
	id           string // objectGUID | entryUUID
	login        string // sAMAccountName | uid
	employee     string // employeeID | employeeNumber
	rdnAttr      string // CN | uid
	attrs        []attr
}

// Normalized attribute names with a meaning beyond a plain copy.
const (
	attrLogin    = "login"
	attrCN       = "cn"
	attrManager  = "manager"
	attrEmployee = "employee_id"
	attrDN       = connectors.AttrDN // read only: where the account is
)

// User account control bits (MS-ADTS 2.2.16).
const (
	uacAccountDisable = 0x0002
	uacNormalAccount  = 0x0200
	uacEnabled        = uacNormalAccount
	uacDisabled       = uacNormalAccount | uacAccountDisable
)

// lockedForever is the ppolicy pwdAccountLockedTime that locks an account
// until an administrator unlocks it (slapo-ppolicy(5)).
const lockedForever = "000001010000Z"

var adSchema = &schema{
	flavour:      ActiveDirectory,
	userClasses:  []string{"top", "person", "organizationalPerson", "user"},
	groupClasses: []string{"top", "group"},
	id:           "objectGUID",
	login:        "sAMAccountName",
	employee:     "employeeID",
	rdnAttr:      "CN",
	attrs: []attr{
		{name: attrLogin, wire: "sAMAccountName", aliases: []string{"sam_account_name", "user_name"}},
		{name: "user_principal_name", wire: "userPrincipalName", aliases: []string{"upn"}},
		{name: attrCN, wire: "cn", aliases: []string{"common_name"}},
		{name: "first_name", wire: "givenName", aliases: []string{"given_name"}},
		{name: "last_name", wire: "sn", aliases: []string{"family_name", "surname"}},
		{name: "display_name", wire: "displayName"},
		{name: "email", wire: "mail", aliases: []string{"mail"}},
		{name: "title", wire: "title"},
		{name: "department", wire: "department"},
		{name: attrEmployee, wire: "employeeID"},
		{name: "phone_number", wire: "telephoneNumber", aliases: []string{"telephone_number"}},
		{name: "mobile_phone", wire: "mobile"},
		{name: "company", wire: "company"},
		{name: "office", wire: "physicalDeliveryOfficeName"},
		{name: "description", wire: "description"},
		{name: attrManager, wire: "manager"},
	},
}

var openLDAPSchema = &schema{
	flavour:      OpenLDAP,
	userClasses:  []string{"top", "person", "organizationalPerson", "inetOrgPerson"},
	groupClasses: []string{"top", "groupOfNames"},
	id:           "entryUUID",
	login:        "uid",
	employee:     "employeeNumber",
	rdnAttr:      "uid",
	attrs: []attr{
		{name: attrLogin, wire: "uid", aliases: []string{"uid", "user_name"}},
		{name: attrCN, wire: "cn", aliases: []string{"common_name"}},
		{name: "first_name", wire: "givenName", aliases: []string{"given_name"}},
		{name: "last_name", wire: "sn", aliases: []string{"family_name", "surname"}},
		{name: "display_name", wire: "displayName"},
		{name: "email", wire: "mail", aliases: []string{"mail"}},
		{name: "title", wire: "title"},
		{name: "department", wire: "departmentNumber"},
		{name: attrEmployee, wire: "employeeNumber", aliases: []string{"employee_number"}},
		{name: "phone_number", wire: "telephoneNumber", aliases: []string{"telephone_number"}},
		{name: "mobile_phone", wire: "mobile"},
		{name: "description", wire: "description"},
		{name: attrManager, wire: "manager"},
	},
}

func schemaOf(f Flavour) *schema {
	if f == OpenLDAP {
		return openLDAPSchema
	}
	return adSchema
}

// wire is the directory attribute of normalized name n ("" when unmapped).
func (s *schema) wire(n string) string {
	for _, a := range s.attrs {
		if a.name == n {
			return a.wire
		}
		for _, al := range a.aliases {
			if al == n {
				return a.wire
			}
		}
	}
	return ""
}

// userAttributes are the attributes an account read asks for.
func (s *schema) userAttributes() []string {
	out := []string{s.id}
	for _, a := range s.attrs {
		out = append(out, a.wire)
	}
	if s.flavour == ActiveDirectory {
		return append(out, "userAccountControl", "pwdLastSet", "memberOf")
	}
	return append(out, "pwdAccountLockedTime", "pwdReset", "memberOf")
}

// idOf is the entry's ID as a string: a GUID in its registry form
// (AD's byte order: the first three fields little-endian) or entryUUID.
func (s *schema) idOf(e *ldapv3.Entry) string {
	if v := e.GetAttributeValue(previewIDAttr); v != "" {
		return v
	}
	if s.flavour == OpenLDAP {
		return strings.ToLower(e.GetAttributeValue(s.id))
	}
	return guidString(e.GetRawAttributeValue(s.id))
}

// idFilter is the filter that finds the entry with id. An ID that is no
// UUID (a preview's stand-in) is compared as it is: a directory finds
// nothing.
func (s *schema) idFilter(id string) string {
	u, err := uuid.Parse(id)
	if err != nil {
		return eq(s.id, id)
	}
	if s.flavour == OpenLDAP {
		return "(entryUUID=" + u.String() + ")"
	}
	var b strings.Builder
	b.WriteString("(objectGUID=")
	for _, c := range guidBytes(u) {
		fmt.Fprintf(&b, "\\%02x", c)
	}
	b.WriteString(")")
	return b.String()
}

// guidString is an objectGUID's 16 bytes as AD shows them.
func guidString(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	var u uuid.UUID
	binary.BigEndian.PutUint32(u[0:], binary.LittleEndian.Uint32(b[0:]))
	binary.BigEndian.PutUint16(u[4:], binary.LittleEndian.Uint16(b[4:]))
	binary.BigEndian.PutUint16(u[6:], binary.LittleEndian.Uint16(b[6:]))
	copy(u[8:], b[8:])
	return u.String()
}

// guidBytes is guidString's inverse.
func guidBytes(u uuid.UUID) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], binary.BigEndian.Uint32(u[0:]))
	binary.LittleEndian.PutUint16(b[4:], binary.BigEndian.Uint16(u[4:]))
	binary.LittleEndian.PutUint16(b[6:], binary.BigEndian.Uint16(u[6:]))
	copy(b[8:], u[8:])
	return b
}

// eq is the filter (attr=value) with value escaped (RFC 4515).
func eq(attr, value string) string { return "(" + attr + "=" + ldapv3.EscapeFilter(value) + ")" }
