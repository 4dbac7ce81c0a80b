package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/names"
)

// setting is one declared setting (settings.go): an environment variable
// and the equivalent flag, or a flag only. The flag wins over the
// variable, the variable over the default.
type setting struct {
	env      string
	flag     string
	def      string // default as text
	shown    string // default as shown, when it is not def
	help     string
	group    string
	enum     []string
	min, max string
	secret   bool     // never printed; also readable from the file named by env+"_FILE"
	isBool   bool     // --flag alone means true
	names    []string // the library fields it feeds (names.Func keys)
	index    []int
}

// key is the setting's name in rawValues and in errors: the variable, or
// --flag for a flag-only setting.
func (s setting) key() string {
	if s.env != "" {
		return s.env
	}
	return "--" + s.flag
}

// defaultText is the default as --help and the README show it, and
// whether it is a value (rather than a description).
func (s setting) defaultText() (string, bool) {
	switch {
	case s.shown != "":
		return s.shown, !strings.Contains(s.shown, " ")
	case s.def != "":
		return s.def, true
	}
	return "-", false
}

// describe is the help of s with the values it allows and, for a secret,
// its _FILE variant; code formats a value.
func (s setting) describe(code func(string) string) string {
	d := s.help
	switch {
	case len(s.enum) > 0:
		vals := make([]string, len(s.enum))
		for i, v := range s.enum {
			vals[i] = code(v)
		}
		d += "; one of " + strings.Join(vals, ", ")
	case s.min != "":
		d += "; " + code(s.min) + " to " + code(s.max)
	}
	if s.secret {
		d += "; also read from the file named by " + code(s.env+"_FILE") + " (it or the variable rather than the flag)"
	}
	return d
}

var durationType = reflect.TypeFor[time.Duration]()

// declared lists the settings of the struct type T in declaration order.
func declared[T any]() []setting {
	var out []setting
	var walk func(t reflect.Type, index []int, group string)
	walk = func(t reflect.Type, index []int, group string) {
		for i := range t.NumField() {
			f := t.Field(i)
			idx := append(append([]int(nil), index...), i)
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, idx, f.Tag.Get("group"))
				continue
			}
			s := setting{
				env: f.Tag.Get("env"), flag: f.Tag.Get("flag"), def: f.Tag.Get("default"), shown: f.Tag.Get("shown"),
				help: f.Tag.Get("help"), group: group, min: f.Tag.Get("min"), max: f.Tag.Get("max"),
				secret: f.Tag.Get("secret") == "true", index: idx, names: strings.Fields(f.Tag.Get("names")),
				isBool: f.Type.Kind() == reflect.Bool || f.Type == reflect.TypeFor[*bool](),
			}
			if e := f.Tag.Get("enum"); e != "" {
				s.enum = strings.Split(e, ",")
			}
			if s.flag == "" || s.help == "" {
				panic(fmt.Sprintf("setting %s.%s: no flag or help", t.Name(), f.Name))
			}
			out = append(out, s)
		}
	}
	walk(reflect.TypeFor[T](), nil, "")
	return out
}

// settings lists every setting of `tvm2kafka run` and `serve`.
func settings() []setting { return declared[runSettings]() }

// settingNames is the names.Func the libraries name their fields by: the
// setting whose names tag lists the field, from the declarations of run
// (which hold every setting a library field stands for); "<key>.file" is
// the _FILE variant of a secret.
func settingNames() names.Func {
	byKey := map[string]string{}
	for _, s := range settings() {
		for _, k := range s.names {
			byKey[k] = s.env
			if s.secret {
				byKey[k+".file"] = s.env + "_FILE"
			}
		}
	}
	return func(key string) string { return byKey[key] }
}

// lookupFunc is os.LookupEnv; tests pass their own.
type lookupFunc func(string) (string, bool)

// rawValues is every setting's text, by key: from the flag, else the
// environment (or a secret's _FILE variant), else the default.
type rawValues map[string]string

// resolveSettings resolves the settings of list: flag, then environment
// (then the secret's _FILE variant), then default. An empty variable
// counts as unset.
func resolveSettings(list []setting, fs *flag.FlagSet, set map[string]*string, lookup lookupFunc) (rawValues, error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	out := rawValues{}
	for _, s := range list {
		if given[s.flag] {
			out[s.key()] = *set[s.flag]
			continue
		}
		out[s.key()] = s.def
		if s.env == "" {
			continue
		}
		v, ok := lookup(s.env)
		inEnv := ok && v != ""
		if s.secret {
			if path, ok := lookup(s.env + "_FILE"); ok && path != "" {
				if inEnv {
					return nil, usagef("%s and %s_FILE are both set: keep one", s.env, s.env)
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return nil, usagef("%s_FILE: %w", s.env, err)
				}
				out[s.key()] = strings.TrimRight(string(b), "\r\n")
				continue
			}
		}
		if inEnv {
			out[s.key()] = v
		}
	}
	return out, nil
}

// defaultsOf are the defaults of the settings of list, as rawValues.
func defaultsOf(list []setting) rawValues {
	v := rawValues{}
	for _, s := range list {
		v[s.key()] = s.def
	}
	return v
}

// defaultValues are the defaults of every setting of run.
func defaultValues() rawValues { return defaultsOf(settings()) }

// decode sets the fields of dst (a pointer to the struct declaring list)
// from raw, checking types, enums and ranges. Each error names the
// setting; an empty value leaves a setting without default at its zero
// value (nil for *bool).
func decode(list []setting, raw rawValues, dst any) []error {
	root := reflect.ValueOf(dst).Elem()
	var errs []error
	bad := func(s setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{s.key()}, args...)...))
	}
	for _, s := range list {
		f := root.FieldByIndex(s.index)
		text := raw[s.key()]
		trimmed := strings.TrimSpace(text)
		if trimmed == "" && s.def == "" {
			continue
		}
		switch {
		case f.Type() == durationType:
			d, err := time.ParseDuration(trimmed)
			if err != nil || d <= 0 {
				example := s.def
				if example == "" {
					example = "2m"
				}
				bad(s, "%q is not a positive duration such as %s", text, example)
			}
			f.SetInt(int64(d))
		case f.Kind() == reflect.Int:
			n, err := strconv.Atoi(trimmed)
			if err != nil {
				bad(s, "%q is not a whole number", text)
				continue
			}
			lo, _ := strconv.Atoi(s.min)
			hi, _ := strconv.Atoi(s.max)
			if s.min != "" && (n < lo || n > hi) {
				bad(s, "%d is out of range %d..%d", n, lo, hi)
			}
			f.SetInt(int64(n))
		case f.Kind() == reflect.Bool || f.Type() == reflect.TypeFor[*bool]():
			b, err := strconv.ParseBool(trimmed)
			if err != nil {
				bad(s, "%q is not true or false", text)
			}
			if f.Kind() == reflect.Pointer {
				f.Set(reflect.ValueOf(&b))
			} else {
				f.SetBool(b)
			}
		case len(s.enum) > 0:
			i := indexFold(s.enum, trimmed)
			if i < 0 {
				bad(s, "%q is not one of %s", text, strings.Join(s.enum, ", "))
				continue
			}
			f.SetString(s.enum[i])
		default:
			f.SetString(text)
		}
	}
	return errs
}

func indexFold(list []string, s string) int {
	for i, v := range list {
		if strings.EqualFold(v, s) {
			return i
		}
	}
	return -1
}

// parseCommandLine parses the flags of args and resolves the settings of
// list against the environment. done tells the command to stop with code:
// help was printed (0) or the command line is wrong (2, reported to
// stderr). err is a bad _FILE variant.
func parseCommandLine(name string, list []setting, args []string, lookup lookupFunc, usage func(io.Writer), stdout, stderr io.Writer) (raw rawValues, code int, done bool, err error) {
	fs, vals := newFlagSetOf(name, list)
	if code, done := parseFlags(fs, args, usage, stdout, stderr); done {
		return nil, code, true, nil
	}
	raw, err = resolveSettings(list, fs, vals, lookup)
	return raw, exitOK, false, err
}

// newFlagSetOf registers a flag for every setting of list. It prints
// nothing itself: parseFlags reports errors and help.
func newFlagSetOf(name string, list []setting) (*flag.FlagSet, map[string]*string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	vals := map[string]*string{}
	for _, s := range list {
		v := &stringFlag{isBool: s.isBool}
		fs.Var(v, s.flag, s.help)
		vals[s.flag] = &v.value
	}
	return fs, vals
}

// stringFlag keeps a flag's text for resolve; a boolean setting's flag
// may stand alone (--dry-run) or take a value (--dry-run=false).
type stringFlag struct {
	value  string
	isBool bool
}

func (f *stringFlag) String() string     { return f.value }
func (f *stringFlag) Set(v string) error { f.value = v; return nil }
func (f *stringFlag) IsBoolFlag() bool   { return f.isBool }

// printSettings writes the settings of list under their group headings:
// the body of every command's --help.
func printSettings(w io.Writer, list []setting) {
	group := ""
	for _, s := range list {
		if s.group != group {
			group = s.group
			fmt.Fprintf(w, "\n%s:\n", group)
		}
		name := "--" + s.flag
		if s.env != "" {
			name += " / " + s.env
		}
		def, _ := s.defaultText()
		if def != "required" {
			def = "default " + def
		}
		fmt.Fprintf(w, "  %s (%s)\n      %s\n", name, def, s.describe(func(v string) string { return v }))
	}
}

// secretsOf are the values of the secret settings among raw.
func secretsOf(list []setting, raw rawValues) []string {
	var out []string
	for _, s := range list {
		if s.secret && raw[s.key()] != "" {
			out = append(out, raw[s.key()])
		}
	}
	return out
}

// effectiveSettings returns every variable of list that has a value,
// secrets replaced by [REDACTED]: what the first log line of a run shows.
func effectiveSettings(list []setting, v rawValues) map[string]string {
	out := map[string]string{}
	for _, s := range list {
		if s.env == "" || v[s.env] == "" {
			continue
		}
		if s.secret {
			out[s.env] = "[REDACTED]"
			continue
		}
		out[s.env] = v[s.env]
	}
	return out
}

// joinErrors is errs as one usage error, nil when there is none.
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return &usageError{errors.Join(errs...)}
}
