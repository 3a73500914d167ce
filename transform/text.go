package transform

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// strokes are letters that carry their mark in the base character, so
// Unicode decomposition does not separate them (Ł is not L + U+0337).
var strokes = map[rune]rune{
	'Ł': 'L', 'ł': 'l', 'Ø': 'O', 'ø': 'o', 'Đ': 'D', 'đ': 'd', 'Ð': 'D', 'ð': 'd',
	'Ħ': 'H', 'ħ': 'h', 'Ŧ': 'T', 'ŧ': 't', 'Ŀ': 'L', 'ŀ': 'l', 'ı': 'i', 'Ƶ': 'Z', 'ƶ': 'z',
}

// ligatures and punctuation that ASCII spells with other characters.
var asciiSpelling = map[rune]string{
	'ß': "ss", 'ẞ': "SS", 'Æ': "AE", 'æ': "ae", 'Œ': "OE", 'œ': "oe", 'Þ': "Th", 'þ': "th",
	'Ĳ': "IJ", 'ĳ': "ij", 'Ŋ': "N", 'ŋ': "n", 'ĸ': "q", 'ſ': "s",
	'‘': "'", '’': "'", '‚': "'", '“': `"`, '”': `"`, '„': `"`, '–': "-", '—': "-", '‐': "-",
	'…': "...", '\u00a0': " ", '\u202f': " ",
}

// toASCII transliterates to ASCII: diacritics removed (Ł → L, é → e),
// ligatures spelled out (ß → ss); anything else non-ASCII is dropped.
func toASCII(s string) string {
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range norm.NFD.String(s) {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case strokes[r] != 0:
			b.WriteRune(strokes[r])
		case asciiSpelling[r] != "":
			b.WriteString(asciiSpelling[r])
		}
	}
	return b.String()
}

// removeDiacritics drops combining marks and strokes but keeps every other
// letter (Ł → L, é → e, ß and 東 unchanged).
func removeDiacritics(s string) string {
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
		case strokes[r] != 0:
			b.WriteRune(strokes[r])
		default:
			b.WriteRune(r)
		}
	}
	return norm.NFC.String(b.String())
}

func removeWhitespace(s string) string {
	if strings.IndexFunc(s, unicode.IsSpace) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// words splits s into words at non-alphanumeric characters and at
// lower-to-upper case changes ("firstName" → first, Name).
func words(s string) []string {
	var out []string
	start := -1
	var prev rune
	for i, r := range s {
		alnum := unicode.IsLetter(r) || unicode.IsDigit(r)
		switch {
		case !alnum:
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		case start < 0:
			start = i
		case unicode.IsUpper(r) && (unicode.IsLower(prev) || unicode.IsDigit(prev)):
			out = append(out, s[start:i])
			start = i
		}
		prev = r
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

func snake(s string, mapCase func(rune) rune) string {
	return strings.Map(mapCase, strings.Join(words(s), "_"))
}

func camelCase(s string) string {
	var b strings.Builder
	for i, w := range words(s) {
		if i == 0 {
			b.WriteString(strings.ToLower(w))
		} else {
			b.WriteString(upperFirst(strings.ToLower(w)))
		}
	}
	return b.String()
}

func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || unicode.IsUpper(r) {
		return s
	}
	return string(unicode.ToTitle(r)) + s[n:]
}

// titleCase capitalizes the first letter of every word (after a space or
// a hyphen) and lowers the rest: "mary-jane O'NEIL" → "Mary-Jane O'neil".
func titleCase(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	first := true
	for _, r := range s {
		if first {
			b.WriteRune(unicode.ToTitle(r))
		} else {
			b.WriteRune(unicode.ToLower(r))
		}
		first = unicode.IsSpace(r) || r == '-'
	}
	return b.String()
}

// sentenceCase capitalizes the first letter and lowers the rest.
func sentenceCase(s string) string {
	s = strings.ToLower(s)
	i := strings.IndexFunc(s, unicode.IsLetter)
	if i < 0 {
		return s
	}
	return s[:i] + upperFirst(s[i:])
}
