package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// renderJSON renders a JSON template. The template must itself be valid
// JSON with placeholders inside strings ("{OktaUser.login}"); each string
// (keys included) is evaluated and re-encoded by encoding/json, so no
// substituted value, whatever its quotes, backslashes or newlines, can
// change the structure. Everything outside strings is kept byte for byte.
func renderJSON(src string, eval func(string) (string, error)) (string, error) {
	if !json.Valid([]byte(src)) {
		return "", errors.New(`not valid JSON; write placeholders inside JSON strings, e.g. {"login": "{email}"}`)
	}
	var b strings.Builder
	for i := 0; i < len(src); {
		if src[i] != '"' {
			b.WriteByte(src[i])
			i++
			continue
		}
		end := stringEnd(src, i)
		lit := src[i:end]
		i = end
		var s string
		if err := json.Unmarshal([]byte(lit), &s); err != nil {
			return "", err
		}
		if !strings.Contains(s, "{") {
			b.WriteString(lit)
			continue
		}
		v, err := eval(s)
		if err != nil {
			return "", err
		}
		enc, err := encodeString(v)
		if err != nil {
			return "", err
		}
		b.WriteString(enc)
	}
	return b.String(), nil
}

// stringEnd returns the index just past the JSON string starting at i
// (src is known valid).
func stringEnd(src string, i int) int {
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(src)
}

func encodeString(s string) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}
