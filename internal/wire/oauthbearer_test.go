package wire

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func jwtWith(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc([]byte(payload)) + "." + enc([]byte("signature"))
}

func TestOAuthBearerMessages(t *testing.T) {
	tok := jwtWith(`{"aud":"https://wrong.example","iss":"https://sts.windows.net/t/","sub":"app"}`)
	calls := 0
	m := &oauthBearer{scope: "https://wrong.example/.default", scopeName: "KAFKA_OAUTH_SCOPE", token: func(context.Context) (string, time.Time, error) {
		calls++
		return tok, time.Now().Add(time.Hour), nil
	}}
	if m.Name() != "OAUTHBEARER" {
		t.Fatal(m.Name())
	}
	sess, ir, err := m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// RFC 7628 initial client response.
	if want := "n,,\x01auth=Bearer " + tok + "\x01\x01"; string(ir) != want {
		t.Fatalf("initial response %q", ir)
	}
	if calls != 1 {
		t.Fatalf("%d token calls", calls)
	}
	done, resp, err := sess.Next(context.Background(), nil)
	if !done || resp != nil || err != nil {
		t.Fatalf("empty server answer: done %v resp %q err %v", done, resp, err)
	}
	// The broker refuses: a JSON error document.
	_, _, err = sess.Next(context.Background(), []byte(`{"status":"invalid_token"}`))
	if !errors.Is(err, kafka.SASLAuthenticationFailed) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"invalid_token", `audience "https://wrong.example"`, `"https://sts.windows.net/t/"`, "KAFKA_OAUTH_SCOPE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "signature") {
		t.Errorf("the token is in the error: %v", err)
	}
	// No token: the connection fails with the credential's error.
	m.token = func(context.Context) (string, time.Time, error) { return "", time.Time{}, errors.New("invalid_client") }
	if _, _, err := m.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("err = %v", err)
	}
}

func TestRetireTime(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ left, want time.Duration }{
		{time.Hour, 59 * time.Minute},
		{5 * time.Minute, 4 * time.Minute},
		{90 * time.Second, 45 * time.Second},
		{8 * time.Second, 4 * time.Second},
	} {
		if got := retireTime(now, now.Add(tc.left)).Sub(now); got != tc.want {
			t.Errorf("token for %v: retire after %v, want %v", tc.left, got, tc.want)
		}
	}
}

// A connection takes writes until its token is about to expire; then a
// write fails before anything is sent, so the client dials again and
// authenticates with a fresh token.
func TestConnectionsRetireBeforeTheirTokenExpires(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	received := make(chan []byte, 4)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := server.Read(buf)
			if err != nil {
				close(received)
				return
			}
			received <- append([]byte(nil), buf[:n]...)
		}
	}()
	exp := time.Now().Add(time.Hour)
	clock := time.Now()
	dials := 0
	dial := oauthDialer(func(context.Context, string, string) (net.Conn, error) { dials++; return client, nil },
		func(context.Context) (string, time.Time, error) { return "tok", exp, nil }, "scope")
	conn, err := dial(context.Background(), "tcp", "broker:9093")
	if err != nil {
		t.Fatal(err)
	}
	rc := conn.(*retiringConn)
	rc.now = func() time.Time { return clock }
	if _, err := conn.Write([]byte("request-1")); err != nil {
		t.Fatal(err)
	}
	if got := <-received; string(got) != "request-1" {
		t.Fatalf("server got %q", got)
	}
	clock = exp.Add(-time.Minute) // the retire time
	if _, err := conn.Write([]byte("request-2")); !errors.Is(err, errConnRetired) {
		t.Fatalf("write at the retire time: %v", err)
	}
	conn.Close()
	if got, ok := <-received; ok {
		t.Fatalf("a retired connection sent %q", got)
	}
	if dials != 1 {
		t.Fatalf("%d dials", dials)
	}
	// No token, no connection.
	dial = oauthDialer(func(context.Context, string, string) (net.Conn, error) { dials++; return client, nil },
		func(context.Context) (string, time.Time, error) { return "", time.Time{}, errors.New("AADSTS7000215") }, "scope")
	if _, err := dial(context.Background(), "tcp", "broker:9093"); err == nil || dials != 1 {
		t.Fatalf("dial without a token: %v, %d dials", err, dials)
	}
}
