package composecheck

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const repo = "../.."

var azureEnv = []string{
	"AZURE_TENANT_ID=tenant-from-env",
	"AZURE_CLIENT_ID=client-from-env",
	"AZURE_CLIENT_SECRET=secret-from-env",
}

func load(t *testing.T, env []string, profiles ...string) (*types.Project, error) {
	t.Helper()
	return loadFile(t, "docker-compose.yml", env, profiles...)
}

func loadFile(t *testing.T, file string, env []string, profiles ...string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(repo, file)},
		cli.WithWorkingDirectory(repo),
		cli.WithEnv(env),
		cli.WithProfiles(profiles),
		cli.WithName("tvm2kafka"),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	return opts.LoadProject(context.Background())
}

func mustLoad(t *testing.T, env []string, profiles ...string) *types.Project {
	t.Helper()
	p, err := load(t, env, profiles...)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func env(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	v, ok := s.Environment[name]
	if !ok || v == nil {
		t.Fatalf("service %s: environment %s not set", s.Name, name)
	}
	return *v
}

func TestServices(t *testing.T) {
	p := mustLoad(t, azureEnv)
	if names := p.ServiceNames(); len(names) != 2 {
		t.Fatalf("services %v, want kafka and tvm2kafka", names)
	}
	for _, name := range []string{"kafka", "tvm2kafka"} {
		if _, err := p.GetService(name); err != nil {
			t.Fatalf("service %s: %v", name, err)
		}
	}
}

func TestKafkaService(t *testing.T) {
	p := mustLoad(t, azureEnv)
	k, err := p.GetService("kafka")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^apache/kafka:4\.\d+\.\d+$`).MatchString(k.Image) {
		t.Errorf("kafka image %q, want the official apache/kafka image pinned to a 4.x.y tag", k.Image)
	}
	if got := env(t, k, "KAFKA_PROCESS_ROLES"); got != "broker,controller" {
		t.Errorf("KAFKA_PROCESS_ROLES=%q", got)
	}
	id := env(t, k, "KAFKA_NODE_ID")
	if voters := env(t, k, "KAFKA_CONTROLLER_QUORUM_VOTERS"); voters != id+"@kafka:9093" {
		t.Errorf("KAFKA_CONTROLLER_QUORUM_VOTERS=%q, want %s@kafka:9093 (node id %s)", voters, id, id)
	}
	if !strings.Contains(env(t, k, "KAFKA_LISTENERS"), "CONTROLLER://:9093") {
		t.Errorf("no CONTROLLER listener on 9093")
	}
	adv := env(t, k, "KAFKA_ADVERTISED_LISTENERS")
	if !strings.Contains(adv, "//kafka:9092") {
		t.Errorf("KAFKA_ADVERTISED_LISTENERS=%q does not advertise kafka:9092 to the compose network", adv)
	}
	for _, v := range []string{"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR"} {
		if got := env(t, k, v); got != "1" {
			t.Errorf("%s=%q, want 1 on a single broker", v, got)
		}
	}
	// KRaft needs a cluster id that is a base64url-encoded 16-byte UUID.
	cid := env(t, k, "CLUSTER_ID")
	if b, err := base64.RawURLEncoding.DecodeString(cid); err != nil || len(b) != 16 {
		t.Errorf("CLUSTER_ID %q is not a base64url UUID (%v)", cid, err)
	}
	hc := k.HealthCheck
	if hc == nil || hc.Disable {
		t.Fatalf("kafka has no healthcheck")
	}
	test := strings.Join(hc.Test, " ")
	if !strings.Contains(test, "/opt/kafka/bin/kafka-broker-api-versions.sh") || !strings.Contains(test, "--bootstrap-server localhost:9092") {
		t.Errorf("healthcheck %q does not ask the broker for its API versions", test)
	}
	if hc.Retries == nil || *hc.Retries < 3 || hc.Interval == nil {
		t.Errorf("healthcheck needs an interval and retries: %+v", hc)
	}
	published := false
	for _, port := range k.Ports {
		if port.Target == 29092 && port.HostIP == "127.0.0.1" {
			published = true
		}
	}
	if !published || !strings.Contains(adv, "//localhost:29092") {
		t.Errorf("host listener: want 127.0.0.1:29092 published and advertised as localhost:29092")
	}
}

func TestTvm2kafkaService(t *testing.T) {
	p := mustLoad(t, azureEnv)
	s, err := p.GetService("tvm2kafka")
	if err != nil {
		t.Fatal(err)
	}
	if s.Build == nil {
		t.Fatalf("tvm2kafka is not built from the Dockerfile")
	}
	abs, _ := filepath.Abs(repo)
	if filepath.Clean(s.Build.Context) != abs || s.Build.Dockerfile != "Dockerfile" {
		t.Errorf("build %q / %q, want the repository root and its Dockerfile", s.Build.Context, s.Build.Dockerfile)
	}
	dep, ok := s.DependsOn["kafka"]
	if !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("depends_on kafka: %+v, want condition service_healthy", dep)
	}
	if s.Restart != "no" {
		t.Errorf("restart %q, want \"no\" (one snapshot, then exit)", s.Restart)
	}
	if got := strings.Join(s.Command, " "); got != "run" {
		t.Errorf("command %q, want run", got)
	}
	if got := env(t, s, "KAFKA_BROKERS"); got != "kafka:9092" {
		t.Errorf("KAFKA_BROKERS=%q, want kafka:9092", got)
	}
	for _, kv := range azureEnv {
		name, val, _ := strings.Cut(kv, "=")
		if got := env(t, s, name); got != val {
			t.Errorf("%s=%q, want %q from the user's environment", name, got, val)
		}
	}
	for name, want := range map[string]string{
		"MDE_API_URL":     "https://api.securitycenter.microsoft.com",
		"MDE_TOKEN_SCOPE": "", // tvm2kafka derives it from MDE_API_URL
		"KAFKA_TOPIC":     "mde.infogathering",
	} {
		if got := env(t, s, name); got != want {
			t.Errorf("%s default %q, want %q", name, got, want)
		}
	}
	// A user's setting overrides the default.
	gov := mustLoad(t, append([]string{"MDE_API_URL=https://api-gov.securitycenter.microsoft.us"}, azureEnv...))
	s, _ = gov.GetService("tvm2kafka")
	if got := env(t, s, "MDE_API_URL"); got != "https://api-gov.securitycenter.microsoft.us" {
		t.Errorf("MDE_API_URL from the environment ignored: %q", got)
	}
}

func TestRequiredCredentials(t *testing.T) {
	for i, kv := range azureEnv {
		name, _, _ := strings.Cut(kv, "=")
		rest := append(append([]string{}, azureEnv[:i]...), azureEnv[i+1:]...)
		_, err := load(t, rest)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: error %v, want one naming %s", name, err, name)
		}
	}
}

// TestDemoFile: the demo runs from its own compose file with no
// credentials in the environment at all.
func TestDemoFile(t *testing.T) {
	p, err := loadFile(t, "docker-compose.demo.yml", nil)
	if err != nil {
		t.Fatalf("docker-compose.demo.yml does not load without credentials: %v", err)
	}
	d, err := p.GetService("demo")
	if err != nil {
		t.Fatalf("demo service: %v", err)
	}
	if len(d.Command) == 0 || d.Command[0] != "demo" {
		t.Errorf("demo command %q", d.Command)
	}
	if len(d.DependsOn) != 0 || len(p.ServiceNames()) != 1 {
		t.Errorf("demo embeds its broker; services %v, depends_on %v", p.ServiceNames(), d.DependsOn)
	}
	main := mustLoad(t, azureEnv)
	s, _ := main.GetService("tvm2kafka")
	if d.Image != s.Image || d.Build == nil || d.Build.Context != s.Build.Context || d.Build.Dockerfile != s.Build.Dockerfile {
		t.Errorf("demo image %q build %+v, want the tvm2kafka image %q built the same way", d.Image, d.Build, s.Image)
	}
	// The main file, by contrast, refuses to load without credentials.
	if _, err := load(t, nil); err == nil {
		t.Errorf("docker-compose.yml loads without AZURE_* credentials")
	}
}

// dockerfile returns the Dockerfile's instructions, continuation lines joined.
func dockerfile(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		out = append(out, cur+line)
		cur = ""
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := dockerfile(t)
	var froms []string
	var buildOut string
	stage := ""
	var entry, cmd, copyFrom string
	for _, in := range ins {
		word, rest, _ := strings.Cut(in, " ")
		switch strings.ToUpper(word) {
		case "FROM":
			froms = append(froms, rest)
			stage = rest
		case "RUN":
			if strings.Contains(rest, "go build") && strings.HasSuffix(stage, "AS build") {
				if !strings.Contains(rest, "CGO_ENABLED=0") {
					t.Errorf("build step %q without CGO_ENABLED=0: the binary must be static", rest)
				}
				if !strings.HasSuffix(strings.TrimSpace(rest), "./cmd/tvm2kafka") {
					t.Errorf("build step %q does not build ./cmd/tvm2kafka", rest)
				}
				if m := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(rest); m != nil {
					buildOut = m[1]
				}
			}
		case "COPY":
			if strings.HasPrefix(rest, "--from=build ") {
				copyFrom = rest
			}
		case "ENTRYPOINT":
			entry = rest
		case "CMD":
			cmd = rest
		}
	}
	if len(froms) != 2 || !regexp.MustCompile(`^golang:1\.26\S* AS build$`).MatchString(froms[0]) {
		t.Fatalf("stages %q, want golang:1.26 AS build, then the runtime image", froms)
	}
	if !strings.HasPrefix(froms[1], "gcr.io/distroless/static") || !strings.HasSuffix(froms[1], ":nonroot") {
		t.Errorf("runtime image %q, want distroless/static nonroot", froms[1])
	}
	if buildOut == "" {
		t.Fatalf("no `go build -o` of ./cmd/tvm2kafka in the build stage")
	}
	if copyFrom != "--from=build "+buildOut+" /tvm2kafka" {
		t.Errorf("COPY %q, want the binary %s copied to /tvm2kafka", copyFrom, buildOut)
	}
	if entry != `["/tvm2kafka"]` || cmd != `["run"]` {
		t.Errorf("ENTRYPOINT %s CMD %s, want [\"/tvm2kafka\"] [\"run\"]", entry, cmd)
	}
	// What the build stage builds must exist in the context it is sent.
	if m, _ := filepath.Glob(filepath.Join(repo, "cmd", "tvm2kafka", "*.go")); len(m) == 0 {
		t.Errorf("the Dockerfile builds ./cmd/tvm2kafka, which has no Go files")
	}
	ignore, err := os.ReadFile(filepath.Join(repo, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		switch strings.TrimSpace(line) {
		case "go.mod", "go.sum", "cmd", "*.go", "**/*.go":
			t.Errorf(".dockerignore excludes %q, which the build needs", line)
		}
	}
}

// TestServeService: `docker compose up -d serve` runs tvm2kafka serve with
// the same image and settings as the one-shot service, its HTTP endpoint
// published on the host's loopback; a plain `up` does not start it.
func TestServeService(t *testing.T) {
	if _, err := mustLoad(t, azureEnv).GetService("serve"); err == nil {
		t.Fatalf("serve starts with a plain `docker compose up`; it belongs to the serve profile")
	}
	p := mustLoad(t, azureEnv, "serve")
	if names := p.ServiceNames(); len(names) != 3 {
		t.Fatalf("services with the serve profile %v, want kafka, tvm2kafka and serve", names)
	}
	s, err := p.GetService("serve")
	if err != nil {
		t.Fatal(err)
	}
	run, _ := p.GetService("tvm2kafka")
	if s.Image != run.Image || s.Build == nil || s.Build.Context != run.Build.Context || s.Build.Dockerfile != run.Build.Dockerfile {
		t.Errorf("serve image %q build %+v, want the tvm2kafka image built the same way", s.Image, s.Build)
	}
	if got := strings.Join(s.Command, " "); got != "serve" {
		t.Errorf("command %q, want serve", got)
	}
	if dep, ok := s.DependsOn["kafka"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("depends_on kafka: %+v, want condition service_healthy", dep)
	}
	if s.Restart != "unless-stopped" {
		t.Errorf("restart %q, want unless-stopped", s.Restart)
	}
	if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) < 35*time.Second {
		t.Errorf("stop_grace_period %v, want at least 35s (snapshot-abort within 30 s)", s.StopGracePeriod)
	}
	for name, v := range run.Environment {
		if got, ok := s.Environment[name]; !ok || (v == nil) != (got == nil) || (v != nil && *v != *got) {
			t.Errorf("serve's %s differs from tvm2kafka's", name)
		}
	}
	if got := env(t, s, "TVM2KAFKA_INTERVAL"); got != "1h" {
		t.Errorf("TVM2KAFKA_INTERVAL default %q, want 1h", got)
	}
	addr := env(t, s, "TVM2KAFKA_HTTP_ADDR")
	published := false
	for _, port := range s.Ports {
		if ":"+strconv.Itoa(int(port.Target)) == addr && port.HostIP == "127.0.0.1" && port.Published == strconv.Itoa(int(port.Target)) {
			published = true
		}
	}
	if !published {
		t.Errorf("ports %+v do not publish TVM2KAFKA_HTTP_ADDR %s on 127.0.0.1", s.Ports, addr)
	}
	every := mustLoad(t, append([]string{"TVM2KAFKA_INTERVAL=15m"}, azureEnv...), "serve")
	if s, _ := every.GetService("serve"); env(t, s, "TVM2KAFKA_INTERVAL") != "15m" {
		t.Errorf("TVM2KAFKA_INTERVAL from the environment ignored")
	}
}
