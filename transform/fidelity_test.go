package transform

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Veza's documented forms and values real HR exports carry.
func TestFidelity(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"remove chars function first, several arguments", `{REMOVE_CHARS, "x", "@", "."}`, "x"},
		{"remove chars function first", `{REMOVE_CHARS, "jane.doe@acme.com", "@", "."}`, "janedoeacmecom"},
		{"remove chars piped, several arguments", `{email | REMOVE_CHARS, "@", ".", "-" | LOWER}`, "lukaszgrubaexamplecom"},
		{"remove chars one argument", `{"(555) 12-34" | REMOVE_CHARS, "()- "}`, "5551234"},
		{"from entity attribute", `{FROM_ENTITY_ATTRIBUTE, "OktaUser", "login"}`, "lukasz.gruba@acme.com"},
		{"from entity attribute dotted", `{FROM_ENTITY_ATTRIBUTE, "OktaUser.login" | UPPER}`, "LUKASZ.GRUBA@ACME.COM"},
		{"from entity attribute missing attribute", `{FROM_ENTITY_ATTRIBUTE, "OktaUser", "nickname"}`, ""},
		{"language name", `{"Spanish" | LANGUAGE_RFC5646}`, "es"},
		{"language name any case", `{"GERMAN" | LANGUAGE_RFC5646}`, "de"},
		{"language self name", `{"español" | LANGUAGE_RFC5646}`, "es"},
		{"language self name with diacritics folded", `{"Francais" | LANGUAGE_RFC5646}`, "fr"},
		{"language regional name", `{"Brazilian Portuguese" | LANGUAGE_RFC5646}`, "pt-BR"},
		{"language name with country", `{"English (United States)" | LANGUAGE_RFC5646}`, "en-US"},
		{"language name with ISO country name", `{"Korean (Korea, Republic of)" | LANGUAGE_RFC5646}`, "ko-KR"},
		{"language tag still read", `{"en_gb" | LANGUAGE_RFC5646}`, "en-GB"},
		{"language three-letter code", `{"spa" | LANGUAGE_RFC5646}`, "es"},
		{"country korea iso name", `{"Korea, Republic of" | COUNTRY_CODE_ISO3166}`, "KR"},
		{"country korea parenthesized", `{"Korea (Republic of)" | COUNTRY_CODE_ISO3166}`, "KR"},
		{"country north korea", `{"Korea, Democratic People's Republic of" | COUNTRY_CODE_ISO3166}`, "KP"},
		{"country viet nam", `{"Viet Nam" | COUNTRY_CODE_ISO3166, alpha3}`, "VNM"},
		{"country russian federation", `{"Russian Federation" | COUNTRY_CODE_ISO3166}`, "RU"},
		{"country cote d'ivoire", `{"Côte d'Ivoire" | COUNTRY_CODE_ISO3166}`, "CI"},
		{"country cote d’ivoire curly", `{"Côte d’Ivoire" | COUNTRY_CODE_ISO3166}`, "CI"},
		{"country cote divoire ascii", `{"Cote d'Ivoire" | COUNTRY_CODE_ISO3166}`, "CI"},
		{"country turkiye", `{"Türkiye" | COUNTRY_CODE_ISO3166}`, "TR"},
		{"country turkey", `{"Turkey" | COUNTRY_CODE_ISO3166, alpha3}`, "TUR"},
		{"country hong kong", `{"Hong Kong" | COUNTRY_CODE_ISO3166}`, "HK"},
		{"country macao", `{"Macao" | COUNTRY_CODE_ISO3166}`, "MO"},
		{"country macau", `{"Macau" | COUNTRY_CODE_ISO3166, alpha3}`, "MAC"},
		{"country iran", `{"Iran (Islamic Republic of)" | COUNTRY_CODE_ISO3166}`, "IR"},
		{"country tanzania", `{"Tanzania, United Republic of" | COUNTRY_CODE_ISO3166}`, "TZ"},
		{"country uk long", `{"United Kingdom of Great Britain and Northern Ireland" | COUNTRY_CODE_ISO3166}`, "GB"},
		{"country saint kitts iso name", `{"Saint Kitts and Nevis" | COUNTRY_CODE_ISO3166}`, "KN"},
		{"country bosnia iso name", `{"Bosnia and Herzegovina" | COUNTRY_CODE_ISO3166}`, "BA"},
		{"country sao tome iso name", `{"Sao Tome and Principe" | COUNTRY_CODE_ISO3166}`, "ST"},
		{"country aland", `{"Åland Islands" | COUNTRY_CODE_ISO3166}`, "AX"},
		{"country kosovo name", `{"Kosovo" | COUNTRY_CODE_ISO3166}`, "XK"},
		{"country kosovo alpha3", `{"Kosovo" | COUNTRY_CODE_ISO3166, alpha3}`, "XKX"},
		{"country kosovo from XKX", `{"XKX" | COUNTRY_CODE_ISO3166}`, "XK"},
		{"country kosovo from XK", `{"xk" | COUNTRY_CODE_ISO3166, alpha3}`, "XKX"},
		{"phone german trunk zero", `{"+49 (0)151 2345678" | PHONE_NUMBER_E164}`, "+491512345678"},
		{"phone uk trunk zero spaced", `{"+44 (0) 20 7946 0958" | PHONE_NUMBER_E164}`, "+442079460958"},
		{"phone swiss trunk zero", `{"+41 (0)44 668 18 00" | PHONE_NUMBER_E164}`, "+41446681800"},
		{"phone trunk zero national with region", `{"(0)151 2345678" | PHONE_NUMBER_E164, "DE"}`, "+491512345678"},
		{"phone trunk zero after country code", `{"+49 030 1234567" | PHONE_NUMBER_E164}`, "+49301234567"},
		{"phone trunk zero in area code parentheses", `{"+44 (020) 7946 0958" | PHONE_NUMBER_E164}`, "+442079460958"},
		{"phone trunk zero after 00", `{"0049 (0)30 1234567" | PHONE_NUMBER_E164}`, "+49301234567"},
		{"phone italy keeps its zero", `{"+39 06 1234 5678" | PHONE_NUMBER_E164}`, "+390612345678"},
		{"phone italy keeps its zero written (0)", `{"+39 (0)6 1234 5678" | PHONE_NUMBER_E164}`, "+390612345678"},
		{"phone area code in parentheses kept", `{"+1 (800) 555-1212" | PHONE_NUMBER_E164}`, "+18005551212"},
		{"first_n zero", `{"abc" | FIRST_N, 0}`, ""},
		{"last_n zero", `{"abc" | LAST_N, 0}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MustParse(tt.src).Eval(testEnv())
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestFidelityErrors(t *testing.T) {
	parse := []struct{ name, src, want string }{
		{"first_n negative", `{first_name | FIRST_N, -1}`, "FIRST_N: the count must not be negative, got -1"},
		{"last_n negative", `{first_name | LAST_N, -2}`, "LAST_N: the count must not be negative, got -2"},
		{"first_n negative function first", `{FIRST_N, "world", -4}`, "the count must not be negative"},
		{"remove chars needs chars", `{REMOVE_CHARS, "x"}`, "REMOVE_CHARS takes"},
		{"from entity attribute needs an attribute", `{FROM_ENTITY_ATTRIBUTE, "OktaUser"}`, `write {FROM_ENTITY_ATTRIBUTE, "OktaUser", "login"}`},
		{"from entity attribute takes no input", `{login | FROM_ENTITY_ATTRIBUTE, "OktaUser", "login"}`, "takes no input"},
		{"from entity attribute constant", `{FROM_ENTITY_ATTRIBUTE, "{x}", "login"}`, "must be constants"},
	}
	for _, tt := range parse {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.src)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	eval := []struct{ name, src, want string }{
		{"from entity attribute no earlier step", `{FROM_ENTITY_ATTRIBUTE, "ScimUser", "id"}`, "no earlier step produced ScimUser"},
		{"unknown language name", `{"Klingonese" | LANGUAGE_RFC5646}`, "not an RFC 5646 language tag or a language name"},
		{"unknown country name", `{"Republic of Nowhere" | COUNTRY_CODE_ISO3166}`, "is not an ISO 3166 country"},
	}
	for _, tt := range eval {
		t.Run(tt.name, func(t *testing.T) {
			_, err := MustParse(tt.src).Eval(testEnv())
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestFromEntityAttributeRefs(t *testing.T) {
	tmpl := MustParse(`{FROM_ENTITY_ATTRIBUTE, "ScimUser", "id"}{FROM_ENTITY_ATTRIBUTE, "OktaUser.login"}`)
	assert.Equal(t, []Ref{{Entity: "ScimUser", Attr: "id"}, {Entity: "OktaUser", Attr: "login"}}, tmpl.Refs())
}

func TestCheckIdentifier(t *testing.T) {
	tests := []struct{ v, want string }{
		{"jane.doe@example.com", ""},
		{"jsmith2", ""},
		{"王小明@example.com", ""},
		{"e10042@example.com", ""},
		{"", "it is empty"},
		{".@example.com", "no letter or digit before @"},
		{"@example.com", "no letter or digit before @"},
		{"-.@example.com", "no letter or digit before @"},
		{".", "no letter or digit"},
		{"jane.@example.com", "starts or ends with a dot"},
		{".doe@example.com", "starts or ends with a dot"},
		{"jane..doe@example.com", "two in a row"},
		{"jane@", "nothing after @"},
		{`o"brien@example.com`, "contains a quote"},
		{"mary.o'brien@example.com", ""},
		{`dom\jane`, "contains a backslash"},
		{"jane\tdoe", "control character"},
		{"jane\x00", "control character"},
		{" jane", "white space"},
		// Issue 27: refused by servers at run time, so refused before.
		{strings.Repeat("a", 64) + "@example.com", ""},
		{strings.Repeat("a", 65) + "@example.com", "65 octets long (at most 64)"},
		{"sean.o suilleabhain@example.com", "contains white space"},
		{"nguyen thi.minh khai@example.com", "contains white space"},
		{"ada .lovelace@example.com", "contains white space"},
		{"ada\u00a0lovelace@example.com", "contains white space"},
		{"smith,john@example.com", `contains ','`},
		{"a@b@example.com", `contains '@'`},
		{"ada@exa mple.com", "contains ' '"},
		{"ada@-example.com", "starts or ends with a hyphen"},
		{"ada@example..com", "empty label"},
		{"ada@" + strings.Repeat("a", 64) + ".com", "label of 64 octets"},
		{"ada@" + strings.Repeat("abcdefghi.", 26) + "com", "263 octets long"},
		{"ada@bücher.de", "xn-- form"},
		{"ada@xn--bcher-kva.de", ""},
		{"jane doe", ""}, // not an address: user names may hold spaces
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			err := CheckIdentifier(tt.v)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

// A name ASCII empties (CJK) renders ".@example.com" from the first
// choice; EvalUnique skips it and takes the fallback.
func TestEvalUniqueSkipsInvalidIdentifiers(t *testing.T) {
	env := &Env{Attrs: map[string]string{"first_name": "小明", "last_name": "王", "employee_id": "10042"}}
	cands := []*Template{
		MustParse(`{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@example.com`),
		MustParse(`{first_name | ASCII | LOWER | FIRST_N, 1}{last_name | ASCII | LOWER | NEXT_NUMBER, 2, 3}@example.com`),
		MustParse(`e{employee_id}@example.com`),
	}
	var asked []string
	got, err := EvalUnique(context.Background(), cands, env, nil, func(_ context.Context, v string) (bool, error) {
		asked = append(asked, v)
		return false, nil
	})
	require.NoError(t, err)
	assert.Equal(t, "e10042@example.com", got)
	assert.Equal(t, []string{"e10042@example.com"}, asked, "invalid values are never looked up")
}
