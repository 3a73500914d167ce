package activities

import (
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
)

const (
	lowerChars   = "abcdefghijklmnopqrstuvwxyz"
	upperChars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digitChars   = "0123456789"
	symbolChars  = "!#$%&*+-=?@^_~"
	similarChars = "0O1lI|"
)

// GeneratePassword makes a password per pp from r (crypto/rand when nil):
// at least one character of every enabled class, look-alikes and excluded
// characters removed. With no class enabled it uses all four.
func GeneratePassword(pp policy.PasswordPolicy, r io.Reader) (secret.Secret, error) {
	if r == nil {
		r = rand.Reader
	}
	n := pp.Length
	if n == 0 {
		n = 20
	}
	var classes []string
	add := func(on bool, chars string) {
		if !on {
			return
		}
		chars = strings.Map(func(c rune) rune {
			if strings.ContainsRune(pp.ExcludeChars, c) || (pp.ExcludeSimilar && strings.ContainsRune(similarChars, c)) {
				return -1
			}
			return c
		}, chars)
		if chars != "" {
			classes = append(classes, chars)
		}
	}
	all := !pp.Lower && !pp.Upper && !pp.Digits && !pp.Symbols
	add(all || pp.Lower, lowerChars)
	add(all || pp.Upper, upperChars)
	add(all || pp.Digits, digitChars)
	add(all || pp.Symbols, symbolChars)
	if len(classes) == 0 {
		return secret.Secret{}, fmt.Errorf("password policy: no characters left")
	}
	if n < len(classes) {
		return secret.Secret{}, fmt.Errorf("password policy: length %d is shorter than the %d required classes", n, len(classes))
	}
	pick := func(chars string) (byte, error) {
		i, err := rand.Int(r, big.NewInt(int64(len(chars))))
		if err != nil {
			return 0, fmt.Errorf("password: random: %w", err)
		}
		return chars[i.Int64()], nil
	}
	pool := strings.Join(classes, "")
	b := make([]byte, n)
	for i := range b {
		chars := pool
		if i < len(classes) {
			chars = classes[i] // one of each class first, shuffled below
		}
		c, err := pick(chars)
		if err != nil {
			return secret.Secret{}, err
		}
		b[i] = c
	}
	for i := len(b) - 1; i > 0; i-- {
		j, err := rand.Int(r, big.NewInt(int64(i+1)))
		if err != nil {
			return secret.Secret{}, fmt.Errorf("password: random: %w", err)
		}
		b[i], b[j.Int64()] = b[j.Int64()], b[i]
	}
	return secret.New(string(b)), nil
}
