package policy

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/registry"
)

// Describe is the description of a target type's connector; false for
// types without one (smtp is the notify steps' own).
func Describe(typ string) (*connectors.Description, bool) { return registry.Describe(typ) }

// genericFields are the keys every target has, whatever its type.
var genericFields = []string{"type", "entity_type"}

// Values are the target's keys as the policy file wrote them, flattened for
// a connector's Build: auth.type, auth.token_env, … Numbers are formatted;
// unset keys are absent.
func (t Target) Values() map[string]string {
	out := map[string]string{}
	flatten(reflect.ValueOf(t), "", out)
	return out
}

func flatten(v reflect.Value, prefix string, out map[string]string) {
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fv := v.Field(i)
		switch fv.Kind() {
		case reflect.Struct:
			flatten(fv, prefix+name+".", out)
		case reflect.String:
			if s := fv.String(); s != "" {
				out[prefix+name] = s
			}
		case reflect.Bool:
			if fv.Bool() {
				out[prefix+name] = "true"
			}
		case reflect.Int:
			if n := fv.Int(); n != 0 {
				out[prefix+name] = strconv.FormatInt(n, 10)
			}
		case reflect.Float64:
			if n := fv.Float(); n != 0 {
				out[prefix+name] = strconv.FormatFloat(n, 'f', -1, 64)
			}
		case reflect.Slice:
			if fv.Len() > 0 {
				var parts []string
				for j := range fv.Len() {
					parts = append(parts, fmt.Sprint(fv.Index(j).Interface()))
				}
				out[prefix+name] = strings.Join(parts, ",")
			}
		}
	}
}

// describedTarget checks a target against its connector's description:
// every field it declares (required, one-of, URL, environment variable
// name, number) and no key it does not declare.
func (c *checker) describedTarget(path string, t Target, d *connectors.Description) {
	vals := t.Values()
	set := map[string]bool{}
	for k := range vals {
		top, _, _ := strings.Cut(k, ".")
		set[top] = true
	}
	for _, f := range d.Fields {
		fp := path + "." + f.Name
		if f.Required && !set[f.Name] {
			c.at(path, "%s targets need %s (%s)", d.Type, f.Name, f.Help)
		}
		if len(f.OneOf) > 0 && !set[f.Name] && !slices.ContainsFunc(f.OneOf, func(o string) bool { return set[o] }) &&
			f.Name < f.OneOf[0] { // report the pair once
			c.at(path, "%s targets need %s or %s", d.Type, f.Name, strings.Join(f.OneOf, " or "))
		}
		switch f.Kind {
		case connectors.FieldURL:
			c.url(fp, vals[f.Name], false)
		case connectors.FieldEnv:
			c.envName(fp, vals[f.Name], false)
		case connectors.FieldNumber:
			if t.RateLimit < 0 && f.Name == "rate_limit" {
				c.at(fp, "must not be negative")
			}
		case connectors.FieldAuth:
			c.validateAuth(fp, t.Auth)
		}
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range set {
			if !yield(k) {
				return
			}
		}
	}) {
		if _, ok := d.Field(k); ok || slices.Contains(genericFields, k) {
			continue
		}
		var known []string
		for _, f := range d.Fields {
			known = append(known, f.Name)
		}
		msg := fmt.Sprintf("%s targets have no %s (their keys: %s)", d.Type, k, strings.Join(append(known, genericFields...), ", "))
		if k == "rate_limit" {
			msg = fmt.Sprintf("%s targets do not support rate_limit", d.Type)
		}
		c.at(path+"."+k, "%s%s", msg, didYouMean(k, known))
	}
}
