package transform

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // ASSUME_TIME_ZONE must not depend on the host's zoneinfo
	"unicode"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
)

// namedLayouts are the Go time layouts users may name instead of spelling.
var namedLayouts = map[string]string{
	"RFC3339": time.RFC3339, "RFC3339NANO": time.RFC3339Nano, "RFC1123": time.RFC1123,
	"RFC1123Z": time.RFC1123Z, "RFC822": time.RFC822, "RFC822Z": time.RFC822Z,
	"ANSIC": time.ANSIC, "UNIXDATE": time.UnixDate, "KITCHEN": time.Kitchen,
	"DATEONLY": time.DateOnly, "DATETIME": time.DateTime, "TIMEONLY": time.TimeOnly,
}

func layout(s string) string {
	if l, ok := namedLayouts[strings.ToUpper(s)]; ok {
		return l
	}
	return s
}

// inputLayouts are tried in order when DATE_FORMAT has no input layout.
var inputLayouts = []string{
	time.RFC3339Nano, "2006-01-02T15:04:05", time.DateTime, time.DateOnly, "2006-01-02T15:04", "20060102",
}

func parseTime(v, inLayout string, loc *time.Location) (time.Time, error) {
	if strings.EqualFold(inLayout, "unix") {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a unix time", v)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	if inLayout != "" {
		t, err := time.ParseInLocation(layout(inLayout), v, loc)
		if err != nil {
			return t, fmt.Errorf("%q does not match the input layout %q", v, inLayout)
		}
		return t, nil
	}
	for _, l := range inputLayouts {
		if t, err := time.ParseInLocation(l, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date I can read: give the input layout as a second argument", v)
}

func fnDateFormat(env *Env, in string, args []arg) (string, error) {
	if in == "" {
		return "", nil
	}
	out, err := str(env, &args[0])
	if err != nil {
		return "", err
	}
	var inLayout string
	if len(args) == 2 {
		if inLayout, err = str(env, &args[1]); err != nil {
			return "", err
		}
	}
	t, err := parseTime(in, inLayout, time.UTC)
	if err != nil {
		return "", err
	}
	if strings.EqualFold(out, "unix") {
		return strconv.FormatInt(t.Unix(), 10), nil
	}
	return t.Format(layout(out)), nil
}

// fnAssumeTimeZone reads a date without a zone as wall-clock time in the
// zone; a date with a zone is converted to it. Output is RFC 3339.
func fnAssumeTimeZone(env *Env, in string, args []arg) (string, error) {
	if in == "" {
		return "", nil
	}
	zone, err := str(env, &args[0])
	if err != nil {
		return "", err
	}
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "" {
		return "", fmt.Errorf("unknown time zone %q (use an IANA name such as America/New_York)", zone)
	}
	t, err := parseTime(in, "", loc)
	if err != nil {
		return "", err
	}
	return t.In(loc).Format(time.RFC3339), nil
}

func checkCountryFormat(args []arg) string {
	if len(args) == 1 && args[0].t == nil && args[0].ref == nil {
		switch strings.ToLower(args[0].s) {
		case "alpha2", "alpha3", "numeric", "name":
		default:
			return fmt.Sprintf("format %q: want alpha2, alpha3, numeric or name", args[0].s)
		}
	}
	return ""
}

// countryKey folds a country name for lookup: case, diacritics and the
// apostrophe's shape do not matter, and "Korea, Republic of" and "Korea
// (Republic of)" are one key.
func countryKey(s string) string {
	s = strings.ToLower(removeDiacritics(strings.TrimSpace(s)))
	s = strings.NewReplacer("’", "'", "‘", "'", "`", "'", ",", " ", "(", " ", ")", " ", "&", " and ").Replace(s)
	words := strings.Fields(s)
	for i, w := range words {
		if w == "st." || w == "st" { // CLDR's "St. Kitts & Nevis" is ISO's "Saint Kitts and Nevis"
			words[i] = "saint"
		}
	}
	return strings.TrimPrefix(strings.Join(words, " "), "the ")
}

// isoShortNames are ISO 3166-1 English short names (and common spellings)
// where they differ from CLDR's English names, which HR systems export
// verbatim: "Korea, Republic of", "Viet Nam".
var isoShortNames = map[string]string{
	"united states of america": "US", "usa": "US", "america": "US", "great britain": "GB",
	"united kingdom of great britain and northern ireland": "GB",
	"england": "GB", "scotland": "GB", "wales": "GB", "northern ireland": "GB", "uk": "GB",
	"south korea": "KR", "korea": "KR", "korea republic of": "KR", "republic of korea": "KR",
	"north korea": "KP", "korea democratic people's republic of": "KP",
	"russia": "RU", "russian federation": "RU", "czech republic": "CZ",
	"holland": "NL", "netherlands kingdom of the": "NL",
	"ivory coast": "CI", "cote d'ivoire": "CI", "turkey": "TR", "turkiye": "TR",
	"vietnam": "VN", "viet nam": "VN", "hong kong": "HK", "macao": "MO", "macau": "MO",
	"kosovo": "XK", "republic of kosovo": "XK",
	"bolivia plurinational state of": "BO", "brunei darussalam": "BN", "cabo verde": "CV",
	"congo democratic republic of the": "CD", "democratic republic of the congo": "CD",
	"congo": "CG", "republic of the congo": "CG", "eswatini": "SZ", "swaziland": "SZ",
	"falkland islands malvinas": "FK", "holy see": "VA",
	"iran islamic republic of": "IR", "lao people's democratic republic": "LA", "laos": "LA",
	"micronesia federated states of": "FM", "moldova republic of": "MD",
	"north macedonia": "MK", "macedonia": "MK", "palestine state of": "PS", "palestine": "PS",
	"saint martin french part": "MF", "sint maarten dutch part": "SX", "syrian arab republic": "SY",
	"taiwan province of china": "TW", "tanzania united republic of": "TZ",
	"venezuela bolivarian republic of": "VE", "virgin islands british": "VG", "virgin islands u.s.": "VI",
	"bahamas": "BS", "gambia": "GM", "burma": "MM", "east timor": "TL",
}

// countryNames maps folded English country names (countryKey) to regions;
// built on first use, read-only afterwards.
var countryNames = sync.OnceValue(func() map[string]language.Region {
	m := map[string]language.Region{}
	names := display.English.Regions()
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			r, err := language.ParseRegion(string([]rune{a, b}))
			if err != nil || !r.IsCountry() || r.Canonicalize() != r {
				continue
			}
			if n := names.Name(r); n != "" {
				m[countryKey(n)] = r
				// "Hong Kong SAR China" is also "Hong Kong".
				if short, ok := strings.CutSuffix(n, " SAR China"); ok {
					m[countryKey(short)] = r
				}
			}
		}
	}
	for name, code := range isoShortNames {
		m[name] = language.MustParseRegion(code)
	}
	return m
})

// kosovo has no ISO 3166 code; XK/XKX are the user-assigned codes the EU,
// the IMF and most HR systems use (CLDR's alpha-3 is XKK).
var kosovo = language.MustParseRegion("XK")

func parseCountry(v string) (language.Region, error) {
	s := strings.TrimSpace(v)
	if r, ok := countryNames()[countryKey(s)]; ok {
		return r, nil
	}
	if strings.EqualFold(s, "XKX") {
		return kosovo, nil
	}
	if r, err := language.ParseRegion(s); err == nil && r.IsCountry() {
		return r.Canonicalize(), nil
	}
	return language.Region{}, fmt.Errorf("%q is not an ISO 3166 country (code or English name)", v)
}

func fnCountry(env *Env, in string, args []arg) (string, error) {
	if in == "" {
		return "", nil
	}
	format := "alpha2"
	if len(args) == 1 {
		var err error
		if format, err = str(env, &args[0]); err != nil {
			return "", err
		}
	}
	r, err := parseCountry(in)
	if err != nil {
		return "", err
	}
	switch strings.ToLower(format) {
	case "alpha2":
		return r.String(), nil
	case "alpha3":
		if r == kosovo {
			return "XKX", nil
		}
		return r.ISO3(), nil
	case "numeric":
		return fmt.Sprintf("%03d", r.M49()), nil
	case "name":
		return display.English.Regions().Name(r), nil
	}
	return "", fmt.Errorf("format %q: want alpha2, alpha3, numeric or name", format)
}

// languageNames maps folded language names, in English and in the
// language itself ("Spanish", "español", "Brazilian Portuguese"), to tags;
// built on first use, read-only afterwards.
var languageNames = sync.OnceValue(func() map[string]language.Tag {
	m := map[string]language.Tag{}
	add := func(name string, t language.Tag) {
		if k := countryKey(name); k != "" {
			if _, dup := m[k]; !dup {
				m[k] = t
			}
		}
	}
	var tags []language.Tag
	for a := 'a'; a <= 'z'; a++ {
		for b := 'a'; b <= 'z'; b++ {
			t, err := language.Parse(string([]rune{a, b}))
			if err == nil && t.String() == string([]rune{a, b}) {
				tags = append(tags, t)
			}
		}
	}
	for _, s := range []string{"en-US", "en-GB", "en-AU", "en-CA", "pt-BR", "pt-PT", "es-419", "es-MX", "es-ES",
		"fr-CA", "fr-FR", "de-CH", "de-AT", "zh-Hans", "zh-Hant", "zh-TW", "zh-HK", "fil", "yue", "haw"} {
		tags = append(tags, language.MustParse(s))
	}
	for _, t := range tags {
		add(display.English.Tags().Name(t), t)
	}
	for _, t := range tags {
		add(display.Self.Name(t), t)
	}
	return m
})

// fnLanguage canonicalizes a language tag ("en_us" → "en-US", "eng" → "en")
// or names a language ("Spanish" → "es", "English (United States)" →
// "en-US").
func fnLanguage(_ *Env, in string, _ []arg) (string, error) {
	if in == "" {
		return "", nil
	}
	s, _, _ := strings.Cut(strings.TrimSpace(in), ".") // en_US.UTF-8
	if t, ok := parseLanguageName(s); ok {
		return t.String(), nil
	}
	t, err := language.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not an RFC 5646 language tag or a language name", in)
	}
	return t.String(), nil
}

// parseLanguageName reads a language name, optionally with a country in
// parentheses: "Spanish", "Portuguese (Brazil)".
func parseLanguageName(s string) (language.Tag, bool) {
	names := languageNames()
	if t, ok := names[countryKey(s)]; ok {
		return t, true
	}
	base, rest, ok := strings.Cut(s, "(")
	region, _, closed := strings.Cut(rest, ")")
	if !ok || !closed {
		return language.Tag{}, false
	}
	t, ok := names[countryKey(base)]
	if !ok {
		return language.Tag{}, false
	}
	r, err := parseCountry(region)
	if err != nil {
		return language.Tag{}, false
	}
	b, _ := t.Base()
	t, err = language.Compose(b, r)
	return t, err == nil
}

// knownCodes are the values of callingCodes.
var knownCodes = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, cc := range callingCodes {
		m[cc] = true
	}
	return m
})

// dropTrunkZero removes a national trunk 0 written after a known country
// code ("+49 030 …", "+44 020 …"): no such number starts with 0 after its
// country code, except Italy's. Calling codes are prefix-free, so the
// first known prefix is the code.
func dropTrunkZero(digits string) string {
	for l := 1; l <= 3 && l < len(digits); l++ {
		if cc := digits[:l]; knownCodes()[cc] {
			if digits[l] == '0' && cc != "39" {
				return cc + digits[l+1:]
			}
			return digits
		}
	}
	return digits
}

var trunkZero = regexp.MustCompile(`\(\s*0\s*\)`)

// callingCodes are ITU country calling codes by ISO 3166 alpha-2.
var callingCodes = map[string]string{
	"US": "1", "CA": "1", "PR": "1", "GB": "44", "IE": "353", "FR": "33", "DE": "49", "NL": "31",
	"BE": "32", "LU": "352", "CH": "41", "AT": "43", "IT": "39", "ES": "34", "PT": "351", "DK": "45",
	"SE": "46", "NO": "47", "FI": "358", "IS": "354", "PL": "48", "CZ": "420", "SK": "421", "HU": "36",
	"RO": "40", "BG": "359", "GR": "30", "TR": "90", "UA": "380", "RU": "7", "EE": "372", "LV": "371",
	"LT": "370", "SI": "386", "HR": "385", "RS": "381", "IL": "972", "AE": "971", "SA": "966", "QA": "974",
	"EG": "20", "ZA": "27", "NG": "234", "KE": "254", "MA": "212", "IN": "91", "PK": "92", "BD": "880",
	"LK": "94", "CN": "86", "HK": "852", "TW": "886", "JP": "81", "KR": "82", "SG": "65", "MY": "60",
	"TH": "66", "VN": "84", "PH": "63", "ID": "62", "AU": "61", "NZ": "64", "MX": "52", "BR": "55",
	"AR": "54", "CL": "56", "CO": "57", "PE": "51", "UY": "598", "CR": "506", "PA": "507", "GT": "502",
	"MT": "356", "CY": "357",
}

// fnPhone normalizes a phone number to E.164. A number without a country
// code needs the region argument (alpha-2, e.g. "US" or "{country_code}").
func fnPhone(env *Env, in string, args []arg) (string, error) {
	s := strings.TrimSpace(in)
	if s == "" {
		return "", nil
	}
	// Drop an extension: "… x123", "… ext. 123", "…;ext=123".
	if i := strings.IndexFunc(s, func(r rune) bool { return unicode.IsLetter(r) || r == ';' || r == '#' }); i > 0 {
		s = strings.TrimSpace(s[:i])
	}
	plus := strings.HasPrefix(s, "+")
	// "+49 (0)151 …": the (0) is the national trunk prefix, dialled only
	// inside the country; E.164 drops it (Italy has none: its 0 stays).
	if m := trunkZero.FindStringIndex(s); m != nil && plus && !strings.HasPrefix(strings.TrimLeft(s[1:], " "), "39") {
		s = s[:m[0]] + " " + s[m[1]:]
	}
	var d strings.Builder
	for _, r := range strings.TrimPrefix(s, "+") {
		switch {
		case r >= '0' && r <= '9':
			d.WriteRune(r)
		case strings.ContainsRune(" -.()/\u00a0", r):
		default:
			return "", fmt.Errorf("%q is not a phone number", in)
		}
	}
	digits := d.String()
	intl := plus
	if !plus {
		region := ""
		if len(args) == 1 {
			var err error
			if region, err = str(env, &args[0]); err != nil {
				return "", err
			}
			if r, err := parseCountry(region); err == nil {
				region = r.String()
			}
		}
		cc := callingCodes[strings.ToUpper(region)]
		switch {
		case strings.HasPrefix(digits, "00"):
			digits, intl = digits[2:], true
		case cc == "1" && strings.HasPrefix(digits, "011"):
			digits, intl = digits[3:], true
		case region == "":
			return "", fmt.Errorf("%q has no country code: give the region, e.g. PHONE_NUMBER_E164, \"US\"", in)
		case cc == "":
			return "", fmt.Errorf("no calling code known for region %q", region)
		case cc == "1":
			if len(digits) == 11 && digits[0] == '1' {
				digits = digits[1:]
			}
			if len(digits) != 10 {
				return "", fmt.Errorf("%q is not a 10-digit North American number", in)
			}
			digits = cc + digits
		case cc == "39": // Italy keeps its leading 0
			digits = cc + digits
		default:
			digits = cc + strings.TrimPrefix(digits, "0")
		}
	}
	if intl {
		digits = dropTrunkZero(digits)
	}
	if len(digits) < 7 || len(digits) > 15 || digits[0] == '0' {
		return "", fmt.Errorf("%q is not a valid international number", in)
	}
	return "+" + digits, nil
}
