package redact

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	cases := []struct{ in, want string }{
		{"nothing secret here", "nothing secret here"},
		{"", ""},
		// Invalid UTF-8 before the signature: a lower-cased copy would be
		// longer (each \xff becomes U+FFFD, 3 bytes), so its offsets must
		// never be used to slice the original.
		{"\xff\xff\xff https://a.blob.core.windows.net/c/p.gz?sv=1&sig=SECRETSECRET&se=2", "\xff\xff\xff https://a.blob.core.windows.net/c/p.gz"},
		{"\xff\xff\xff …?sig=SECRETSECRET&se=2", "\xff\xff\xff …?sig=" + Mask + "&se=2"},
		{"\xff\xff\xff\xff\xff sig=ab", "\xff\xff\xff\xff\xff sig=" + Mask},
		{"\xc3\x28 SIG=AbC%2Fd%3D", "\xc3\x28 SIG=" + Mask},
		{`Get "https://acct.blob.core.windows.net/c/p.gz?sv=2020&sig=abc%2Fdef&se=1": EOF`, `Get "https://acct.blob.core.windows.net/c/p.gz": EOF`},
		{`{"url":"https://h/p?sig=x\"y"}`, `{"url":"https://h/p\"y"}`},
		{"HTTPS://H/P?SIG=X#frag", "HTTPS://H/P#frag"},
		{"https://h/p&sig=LEAK", "https://h/p&sig=" + Mask},
		{"url sig%3Dabc%2B%3D&x", "url sig%3D" + Mask + "&x"},
		{"Authorization: Bearer eyJ0eXAi.eyJhdWQi.c2lnbmF0dXJl", "Authorization: Bearer " + Mask},
		{"authorization: bearer abcdefgh==, next", "authorization: bearer " + Mask + ", next"},
		{"a bearer token obtained elsewhere", "a bearer token obtained elsewhere"},
		{`"token_type":"Bearer","expires_in":3599`, `"token_type":"Bearer","expires_in":3599`},
		{"signature=ok design=ok", "signature=ok design=ok"},
		{"sig= empty", "sig= empty"},
		{"sig=" + Mask + "&se=1", "sig=" + Mask + "&se=1"},
	}
	for _, tc := range cases {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
		if got := string(Bytes([]byte(tc.in))); got != tc.want {
			t.Errorf("Bytes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBytesReturnsItsInputWhenClean(t *testing.T) {
	p := []byte("part 3 (c/p.gz) line 7: HTTP 503")
	if got := Bytes(p); &got[0] != &p[0] {
		t.Fatal("clean input was copied")
	}
}

func TestRedactorKnownSecrets(t *testing.T) {
	r := New("hunter2-password", `quo"te\secret`, "abc", "")
	in := `{"error":"login as bob with hunter2-password failed","detail":"quo\"te\\secret","short":"abc"}`
	got := r.String(in)
	for _, bad := range []string{"hunter2-password", `quo\"te\\secret`} {
		if strings.Contains(got, bad) {
			t.Errorf("%q still in %s", bad, got)
		}
	}
	if !strings.Contains(got, `"short":"abc"`) {
		t.Errorf("a value shorter than MinSecretLen was redacted: %s", got)
	}
	// A secret holding a shorter one is replaced whole.
	r = New("pass", "password-long")
	if got := r.String("x password-long y pass"); got != "x "+Mask+" y "+Mask {
		t.Errorf("got %q", got)
	}
	var nilR *Redactor
	if got := nilR.String("https://h/p?sig=x"); got != "https://h/p" {
		t.Errorf("nil Redactor: %q", got)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriter(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, New("s3cr3t-value"))
	in := "msg s3cr3t-value https://h/c/p?sv=1&sig=abc Bearer abcdefghijkl\n"
	n, err := w.Write([]byte(in))
	if err != nil || n != len(in) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(in))
	}
	if want := "msg " + Mask + " https://h/c/p Bearer " + Mask + "\n"; out.String() != want {
		t.Fatalf("wrote %q, want %q", out.String(), want)
	}
	if _, err := NewWriter(failingWriter{}, nil).Write([]byte("x")); err == nil {
		t.Fatal("the underlying error was lost")
	}
}

// sigAlphabet is what a SAS signature looks like in text.
const sigAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789%+/="

// plant turns fuzz bytes into a secret of at least 8 characters of alphabet.
func plant(seed []byte, alphabet string) string {
	var b strings.Builder
	b.WriteString("Zq9")
	for _, c := range seed {
		b.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	for b.Len() < 8 {
		b.WriteByte('x')
	}
	return b.String()
}

// FuzzString checks, for any text: no panic; redacting twice changes
// nothing more; text with no "sig", "bearer" or "://" is returned as it
// is; and a signature or bearer token planted anywhere in the text, in any
// case, never survives.
func FuzzString(f *testing.F) {
	for _, s := range []string{
		"", "\xff\xff\xff …?sig=SECRETSECRET&se=2", "\xff\xff\xff\xff\xff sig=ab",
		"https://a.blob.core.windows.net/c/p.gz?sv=2020&sig=abc%2F&se=1",
		"Bearer eyJ0eXAi.abc.def", "x\xc3", "https://h/p&", "sIg%3d", "bearer\t\tabcdefgh=",
	} {
		f.Add(s, []byte("seedSEED"), uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, seed []byte, where uint8) {
		got := String(s)
		if again := String(got); again != got {
			t.Fatalf("not idempotent:\n in %q\nout %q\nagain %q", s, got, again)
		}
		if !suspicious([]byte(s)) && got != s {
			t.Fatalf("clean text changed: %q → %q", s, got)
		}
		pos := 0
		if len(s) > 0 {
			pos = int(where) % (len(s) + 1)
		}
		prefix, suffix := s[:pos], s[pos:]
		secret := plant(seed, sigAlphabet)
		for _, key := range []string{"sig=", "SIG=", "Sig%3D"} {
			text := prefix + "&" + key + secret + "&" + suffix
			if strings.Contains(s, secret) {
				continue
			}
			if out := String(text); strings.Contains(out, secret) {
				t.Fatalf("signature survived:\n in %q\nout %q", text, out)
			}
		}
		token := plant(seed, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/")
		if !strings.Contains(s, token) {
			text := prefix + " Authorization: Bearer " + token + " " + suffix
			if out := String(text); strings.Contains(out, token) {
				t.Fatalf("bearer token survived:\n in %q\nout %q", text, out)
			}
		}
		known := plant(seed, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
		if !strings.Contains(s, known) {
			if out := New(known).String(prefix + known + suffix); strings.Contains(out, known) {
				t.Fatalf("known secret survived: %q", out)
			}
		}
	})
}
