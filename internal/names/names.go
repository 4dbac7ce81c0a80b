// Package names lets a library name the settings behind its fields in
// its messages without knowing them: the program, the one place where
// settings and their variable names are declared, gives a Func that maps
// a field key ("wire.Brokers", "source.TenantID") to the setting's name
// (its environment variable). A library used without one names its own fields.
package names

import "strings"

// Func maps a field key, "<package>.<Field>", to the name of the setting
// behind it. The key "<package>.<Field>.file" names the setting's file
// variant, where a secret can also be read from a file. It returns "" for
// a key it does not know.
type Func func(key string) string

// Of is the name of the setting behind key: f's answer, or else the
// field's own name (the part of key after the package).
func (f Func) Of(key string) string {
	if f != nil {
		if n := f(key); n != "" {
			return n
		}
	}
	_, field, ok := strings.Cut(key, ".")
	if !ok {
		return key
	}
	return field
}
