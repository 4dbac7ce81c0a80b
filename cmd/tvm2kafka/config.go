package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/producer"
	"github.com/tvm2kafka/tvm2kafka/source"
)

// Exit codes (README "Exit status").
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// usageError marks an error of configuration or usage: exit status 2,
// reported before any network call.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// setting is one configuration value: an environment variable and the
// equivalent flag. The flag wins over the variable, the variable over
// the default.
type setting struct {
	env    string
	flag   string
	def    string
	help   string
	secret bool // never printed; also readable from the file named by env+"_FILE"
	isBool bool // --flag alone means true
	group  string
}

// settings lists every setting of `tvm2kafka run` in help order.
func settings() []setting {
	d := producer.DefaultConfig()
	return []setting{
		{group: "Defender API and Entra ID"},
		{env: "AZURE_TENANT_ID", flag: "azure-tenant-id", help: "Entra ID tenant (directory) ID"},
		{env: "AZURE_CLIENT_ID", flag: "azure-client-id", help: "app (client) ID; with managed identity: a user-assigned identity's client ID"},
		{env: "AZURE_CLIENT_SECRET", flag: "azure-client-secret", secret: true, help: "client secret (client-credentials flow); prefer the variable or AZURE_CLIENT_SECRET_FILE over the flag"},
		{env: "AZURE_CLIENT_CERTIFICATE_PATH", flag: "azure-client-certificate-path", help: "PEM or PKCS#12 certificate with its private key (certificate credential)"},
		{env: "AZURE_CLIENT_CERTIFICATE_PASSWORD", flag: "azure-client-certificate-password", secret: true, help: "password of a PKCS#12 certificate"},
		{env: "AZURE_FEDERATED_TOKEN_FILE", flag: "azure-federated-token-file", help: "workload identity token file (set by the AKS workload identity webhook)"},
		{env: "AZURE_AUTHORITY_HOST", flag: "azure-authority-host", help: "Entra ID authority, e.g. https://login.microsoftonline.us for GCC High / DoD (default public cloud)"},
		{env: "MDE_AUTH", flag: "mde-auth", def: "auto", help: "auto | token | client-secret | client-certificate | workload-identity | managed-identity; auto picks by the settings present (managed identity only when asked for)"},
		{env: "MDE_API_URL", flag: "mde-api-url", def: "https://api.securitycenter.microsoft.com", help: "Defender API base URL (regional and government hosts too)"},
		{env: "MDE_TOKEN_SCOPE", flag: "mde-token-scope", help: "OAuth scope (default https://api.securitycenter.microsoft.com/.default; for *.securitycenter.microsoft.us hosts that host + /.default)"},
		{env: "MDE_ACCESS_TOKEN", flag: "mde-access-token", secret: true, help: "bearer token obtained elsewhere; skips Entra ID"},
		{env: "MDE_SAS_VALID_HOURS", flag: "mde-sas-valid-hours", help: "sasValidHours sent to the export API, 1-24 (default: not sent, the API's 3 hours)"},
		{env: "MDE_EXPORT", flag: "mde-export", def: "InfoGatheringExport", help: "export to take: GET /api/machines/{export}"},
		{group: "Kafka"},
		{env: "KAFKA_BROKERS", flag: "kafka-brokers", help: "comma-separated host:port (required)"},
		{env: "KAFKA_TOPIC", flag: "kafka-topic", def: d.Topic, help: "target topic; created when missing"},
		{env: "KAFKA_DLQ_TOPIC", flag: "kafka-dlq-topic", help: "topic for rejected lines (optional; created when missing)"},
		{env: "KAFKA_TABLE_TOPIC", flag: "kafka-table-topic", help: "compacted topic holding the current device table: one record per device, tombstones for removed devices (optional; created when missing with cleanup.policy=compact)"},
		{env: "KAFKA_COMPRESSION", flag: "kafka-compression", def: d.Compression, help: "none | gzip | snappy | lz4 | zstd"},
		{env: "KAFKA_TOPIC_PARTITIONS", flag: "kafka-topic-partitions", def: strconv.Itoa(d.TopicPartitions), help: "partitions of a topic this tool creates (an existing topic is used as it is)"},
		{env: "KAFKA_TOPIC_REPLICATION_FACTOR", flag: "kafka-topic-replication-factor", def: strconv.Itoa(d.TopicReplicationFactor), help: "replication factor of a created topic; -1 = the broker's default"},
		{env: "KAFKA_MAX_MESSAGE_BYTES", flag: "kafka-max-message-bytes", def: strconv.Itoa(d.MaxMessageBytes), help: "largest record published: key, value and headers together; a line whose record is larger is rejected (at most the topic's max.message.bytes; Event Hubs: at most 1000000)"},
		{env: "KAFKA_SASL_MECHANISM", flag: "kafka-sasl-mechanism", help: "PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 | OAUTHBEARER (a token from the Entra ID credential above, e.g. for Azure Event Hubs)"},
		{env: "KAFKA_SASL_USERNAME", flag: "kafka-sasl-username", help: "SASL user (Azure Event Hubs: $ConnectionString)"},
		{env: "KAFKA_SASL_PASSWORD", flag: "kafka-sasl-password", secret: true, help: "SASL password (Event Hubs: the connection string); prefer the variable or KAFKA_SASL_PASSWORD_FILE"},
		{env: "KAFKA_OAUTH_SCOPE", flag: "kafka-oauth-scope", help: "OAuth scope of the OAUTHBEARER token (default https://<host of the first broker>/.default, the Event Hubs convention)"},
		{env: "KAFKA_TLS", flag: "kafka-tls", isBool: true, help: "TLS to the brokers, true or false (default: off, on when a KAFKA_TLS_*_FILE is set; false with one of them is an error)"},
		{env: "KAFKA_TLS_CA_FILE", flag: "kafka-tls-ca-file", help: "PEM CA bundle to verify the brokers (default: system roots)"},
		{env: "KAFKA_TLS_CERT_FILE", flag: "kafka-tls-cert-file", help: "PEM client certificate (mutual TLS)"},
		{env: "KAFKA_TLS_KEY_FILE", flag: "kafka-tls-key-file", help: "PEM client key (mutual TLS); may be encrypted (KAFKA_TLS_KEY_PASSWORD)"},
		{env: "KAFKA_TLS_KEY_PASSWORD", flag: "kafka-tls-key-password", secret: true, help: "password of an encrypted KAFKA_TLS_KEY_FILE (PKCS#8 or legacy PEM encryption)"},
		{env: "KAFKA_TOPIC_CONFIG", flag: "kafka-topic-config", help: "key=value,... topic configs of topics this tool creates, e.g. retention.ms=604800000,min.insync.replicas=2"},
		{group: "Runs and serve"},
		{env: "TVM2KAFKA_FORCE", flag: "force", def: "false", isBool: true, help: "publish even when the topic already ends with a complete snapshot of the same export, or another run's lease is live"},
		{env: "TVM2KAFKA_LEASE", flag: "lease", def: "15m", help: "an unfinished run whose newest message (Kafka timestamp) is younger than this is still publishing: a run refuses to start beside it; an older one is treated as dead"},
		{env: "TVM2KAFKA_INTERVAL", flag: "interval", def: "1h", help: "serve: time between snapshots (plus a jitter of up to 10 %); below 3m the export API's 20 calls an hour are the limit"},
		{env: "TVM2KAFKA_HTTP_ADDR", flag: "http-addr", def: ":8080", help: "serve: address of the HTTP endpoint (/metrics, /healthz, /readyz)"},
		{group: "Pipeline and logs"},
		{env: "TVM2KAFKA_WORKERS", flag: "workers", help: "part files processed at once (default: the CPUs this process may use, GOMAXPROCS, capped so that the workers fit the container's memory limit)"},
		{env: "TVM2KAFKA_RETRY_MAX_ELAPSED", flag: "retry-max-elapsed", def: "2m", help: "how long transient failures of one part or write are retried before the run fails"},
		{env: "TVM2KAFKA_DRY_RUN", flag: "dry-run", def: "false", isBool: true, help: "download, decompress and frame everything but publish nothing (no Kafka needed)"},
		{env: "TVM2KAFKA_CPU_PROFILE", flag: "cpu-profile", help: "write a runtime/pprof CPU profile of the run to this file (go tool pprof -top tvm2kafka FILE)"},
		{env: "TVM2KAFKA_MEM_PROFILE", flag: "mem-profile", help: "write a runtime/pprof allocation profile (allocs: alloc_space and inuse_space) to this file at the end of the run"},
		{env: "LOG_LEVEL", flag: "log-level", def: "info", help: "trace | debug | info | warn | error"},
		{env: "LOG_FORMAT", flag: "log-format", def: "json", help: "json | console"},
	}
}

// lookupFunc is os.LookupEnv; tests pass their own.
type lookupFunc func(string) (string, bool)

// rawValues resolves every setting: flag, then environment (then the
// secret's _FILE variant), then default.
type rawValues map[string]string

func resolve(fs *flag.FlagSet, set map[string]*string, lookup lookupFunc) (rawValues, error) {
	return resolveSettings(settings(), fs, set, lookup)
}

// resolveSettings is resolve for the settings of list only.
func resolveSettings(list []setting, fs *flag.FlagSet, set map[string]*string, lookup lookupFunc) (rawValues, error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	out := rawValues{}
	for _, s := range list {
		if s.env == "" {
			continue
		}
		if given[s.flag] {
			out[s.env] = *set[s.flag]
			continue
		}
		v, ok := lookup(s.env)
		given := ok && v != ""
		if s.secret {
			if path, ok := lookup(s.env + "_FILE"); ok && path != "" {
				if given {
					return nil, usagef("%s and %s_FILE are both set: keep one", s.env, s.env)
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return nil, usagef("%s_FILE: %w", s.env, err)
				}
				out[s.env] = strings.TrimRight(string(b), "\r\n")
				continue
			}
		}
		if given {
			out[s.env] = v
			continue
		}
		out[s.env] = s.def
	}
	return out, nil
}

// newFlagSet registers a flag for every setting. It prints nothing itself:
// parseFlags reports errors and help.
func newFlagSet(name string) (*flag.FlagSet, map[string]*string) {
	return newFlagSetOf(name, settings())
}

// newFlagSetOf registers a flag for every setting of list.
func newFlagSetOf(name string, list []setting) (*flag.FlagSet, map[string]*string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	vals := map[string]*string{}
	for _, s := range list {
		if s.env == "" {
			continue
		}
		v := &stringFlag{isBool: s.isBool}
		fs.Var(v, s.flag, s.help)
		vals[s.flag] = &v.value
	}
	return fs, vals
}

func printRunUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: tvm2kafka run [flags]")
	fmt.Fprintln(w, "\nTakes one snapshot of the Defender export and publishes it to Kafka, then exits.")
	fmt.Fprintln(w, "Every setting is a flag and an environment variable; the flag wins. Secrets can also be")
	fmt.Fprintln(w, "read from a file named by <VARIABLE>_FILE.")
	for _, s := range settings() {
		if s.env == "" {
			fmt.Fprintf(w, "\n%s:\n", s.group)
			continue
		}
		def := s.def
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(w, "  --%s / %s (default %s)\n      %s\n", s.flag, s.env, def, s.help)
	}
	fmt.Fprintln(w, "\nExit status: 0 snapshot complete or export unchanged, 1 snapshot failed (abort markers written where")
	fmt.Fprintln(w, "start markers were) or another run is publishing, 2 bad configuration or usage.")
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

// config is the validated configuration of one run.
type config struct {
	auth        string
	cred        source.CredentialConfig
	apiURL      string
	export      string
	sasHours    int
	kafka       producer.Config
	workers     int
	retryMax    time.Duration
	dryRun      bool
	cpuProfile  string // TVM2KAFKA_CPU_PROFILE: file, "" = none
	memProfile  string // TVM2KAFKA_MEM_PROFILE: file, "" = none
	logLevel    zerolog.Level
	logFormat   string
	secretsSeen []string // values to scrub from anything printed
	kafkaScope  string   // KAFKA_OAUTH_SCOPE (or its default) with OAUTHBEARER
	warnings    []string // settings that are set but not used, logged at start

	force    bool          // TVM2KAFKA_FORCE: publish even when unchanged or leased
	lease    time.Duration // TVM2KAFKA_LEASE
	interval time.Duration // TVM2KAFKA_INTERVAL (serve)
	httpAddr string        // TVM2KAFKA_HTTP_ADDR (serve)
	// workersAuto is set when TVM2KAFKA_WORKERS was not given and workers
	// was derived from res (see resources.go).
	workersAuto bool
	res         resources
	// goMemLimit is the runtime's soft memory limit in force (0 = none);
	// goMemLimitSet tells that tvm2kafka set it from the container's.
	goMemLimit    int64
	goMemLimitSet bool
	// effective is every setting's value as used, secrets redacted: the
	// first log line of every run carries it.
	effective map[string]string
}

// parseConfig turns raw values into a validated config. It makes no
// network call; every error is a usageError naming the setting.
func parseConfig(v rawValues) (*config, error) {
	c := &config{export: v["MDE_EXPORT"]}
	var errs []error
	bad := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{env}, args...)...))
	}
	intVal := func(env string, min, max int) int {
		s := v[env]
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			bad(env, "%q is not a whole number", s)
			return 0
		}
		if n < min || n > max {
			bad(env, "%d is out of range %d..%d", n, min, max)
		}
		return n
	}
	boolVal := func(env string) bool {
		b, err := strconv.ParseBool(strings.TrimSpace(v[env]))
		if err != nil {
			bad(env, "%q is not true or false", v[env])
		}
		return b
	}

	// Logs.
	lvl, err := zerolog.ParseLevel(strings.ToLower(v["LOG_LEVEL"]))
	if err != nil || v["LOG_LEVEL"] == "" {
		bad("LOG_LEVEL", "%q is not one of trace, debug, info, warn, error", v["LOG_LEVEL"])
	}
	c.logLevel = lvl
	c.logFormat = strings.ToLower(v["LOG_FORMAT"])
	if c.logFormat != "json" && c.logFormat != "console" {
		bad("LOG_FORMAT", "%q is not json or console", v["LOG_FORMAT"])
	}

	durVal := func(env, example string) time.Duration {
		d, err := time.ParseDuration(strings.TrimSpace(v[env]))
		if err != nil || d <= 0 {
			bad(env, "%q is not a positive duration such as %s", v[env], example)
		}
		return d
	}

	// Runs and serve.
	c.force = boolVal("TVM2KAFKA_FORCE")
	c.lease = durVal("TVM2KAFKA_LEASE", "15m")
	c.interval = durVal("TVM2KAFKA_INTERVAL", "1h")
	c.httpAddr = strings.TrimSpace(v["TVM2KAFKA_HTTP_ADDR"])
	if err := checkListenAddr(c.httpAddr); err != nil {
		bad("TVM2KAFKA_HTTP_ADDR", "%v", err)
	}

	// Pipeline.
	c.res = detectResources()
	if strings.TrimSpace(v["TVM2KAFKA_WORKERS"]) != "" {
		c.workers = intVal("TVM2KAFKA_WORKERS", 1, 256)
	}
	c.dryRun = boolVal("TVM2KAFKA_DRY_RUN")
	c.cpuProfile, c.memProfile = v["TVM2KAFKA_CPU_PROFILE"], v["TVM2KAFKA_MEM_PROFILE"]
	if d, err := time.ParseDuration(v["TVM2KAFKA_RETRY_MAX_ELAPSED"]); err != nil || d <= 0 {
		bad("TVM2KAFKA_RETRY_MAX_ELAPSED", "%q is not a positive duration such as 2m", v["TVM2KAFKA_RETRY_MAX_ELAPSED"])
	} else {
		c.retryMax = d
	}

	// Defender API.
	if c.export == "" || strings.ContainsAny(c.export, "/?#") {
		bad("MDE_EXPORT", "%q is not an export name", c.export)
	}
	c.apiURL = strings.TrimRight(v["MDE_API_URL"], "/")
	if err := checkURL(c.apiURL); err != nil {
		bad("MDE_API_URL", "%v", err)
	}
	if s := v["MDE_SAS_VALID_HOURS"]; s != "" {
		c.sasHours = intVal("MDE_SAS_VALID_HOURS", 1, 24)
	}
	scope := v["MDE_TOKEN_SCOPE"]
	if scope == "" {
		scope = defaultScope(c.apiURL)
	}
	c.cred = source.CredentialConfig{
		TenantID:            v["AZURE_TENANT_ID"],
		ClientID:            v["AZURE_CLIENT_ID"],
		ClientSecret:        v["AZURE_CLIENT_SECRET"],
		CertificatePath:     v["AZURE_CLIENT_CERTIFICATE_PATH"],
		CertificatePassword: v["AZURE_CLIENT_CERTIFICATE_PASSWORD"],
		FederatedTokenFile:  v["AZURE_FEDERATED_TOKEN_FILE"],
		AuthorityHost:       strings.TrimRight(v["AZURE_AUTHORITY_HOST"], "/"),
		AccessToken:         v["MDE_ACCESS_TOKEN"],
		Scope:               scope,
	}
	if h := c.cred.AuthorityHost; h != "" {
		if u, err := url.Parse(h); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("AZURE_AUTHORITY_HOST", "%q is not an https URL", h)
		}
	}
	c.auth, err = pickAuth(v["MDE_AUTH"], c.cred)
	if err != nil {
		errs = append(errs, err)
	}
	c.warnings = append(c.warnings, ignoredCredentials(c.auth, c.cred)...)
	// Keep only the settings of the chosen credential, so that the
	// source package's own selection agrees with ours.
	switch c.auth {
	case "token":
		c.cred = source.CredentialConfig{AccessToken: c.cred.AccessToken, Scope: scope}
	case "client-secret":
		c.cred.CertificatePath, c.cred.FederatedTokenFile, c.cred.AccessToken = "", "", ""
	case "client-certificate":
		c.cred.ClientSecret, c.cred.FederatedTokenFile, c.cred.AccessToken = "", "", ""
	case "workload-identity":
		c.cred.ClientSecret, c.cred.CertificatePath, c.cred.AccessToken = "", "", ""
	case "managed-identity":
		c.cred.ClientSecret, c.cred.CertificatePath, c.cred.FederatedTokenFile, c.cred.AccessToken = "", "", "", ""
	}
	if err == nil {
		// Builds the credential without a network call: a certificate that
		// cannot be used (unparseable, wrong password) is a configuration
		// error, found here rather than inside the run.
		if _, _, err := source.NewTokenSource(c.cred); err != nil {
			errs = append(errs, err)
		}
	}

	// Kafka.
	k := producer.DefaultConfig()
	if b := strings.TrimSpace(v["KAFKA_BROKERS"]); b != "" {
		for _, h := range strings.Split(b, ",") {
			h = strings.TrimSpace(h)
			if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
				bad("KAFKA_BROKERS", "%q is not host:port", h)
			}
			k.Brokers = append(k.Brokers, h)
		}
	} else if !c.dryRun {
		bad("KAFKA_BROKERS", "required (comma-separated host:port), or set TVM2KAFKA_DRY_RUN=true")
	}
	k.Topic = v["KAFKA_TOPIC"]
	k.DLQTopic = v["KAFKA_DLQ_TOPIC"]
	k.TableTopic = v["KAFKA_TABLE_TOPIC"]
	k.Compression = strings.ToLower(v["KAFKA_COMPRESSION"])
	k.TopicPartitions = intVal("KAFKA_TOPIC_PARTITIONS", 1, 100000)
	k.TopicReplicationFactor = intVal("KAFKA_TOPIC_REPLICATION_FACTOR", -1, 1000)
	if k.TopicReplicationFactor == 0 {
		bad("KAFKA_TOPIC_REPLICATION_FACTOR", "0 is not allowed; -1 means the broker's default")
	}
	k.MaxMessageBytes = intVal("KAFKA_MAX_MESSAGE_BYTES", producer.MinMaxMessageBytes, producer.MaxMaxMessageBytes)
	if c.workers == 0 {
		c.workers, c.workersAuto = autoWorkers(c.res, k.MaxMessageBytes), true
	}
	k.SASLMechanism = strings.ToUpper(v["KAFKA_SASL_MECHANISM"])
	k.SASLUsername = v["KAFKA_SASL_USERNAME"]
	k.SASLPassword = v["KAFKA_SASL_PASSWORD"]
	k.TLSCAFile = v["KAFKA_TLS_CA_FILE"]
	k.TLSCertFile = v["KAFKA_TLS_CERT_FILE"]
	k.TLSKeyFile = v["KAFKA_TLS_KEY_FILE"]
	k.TLSKeyPassword = v["KAFKA_TLS_KEY_PASSWORD"]
	tlsFiles := k.TLSCAFile != "" || k.TLSCertFile != "" || k.TLSKeyFile != ""
	if strings.TrimSpace(v["KAFKA_TLS"]) == "" {
		k.TLS = tlsFiles // unset: on when a TLS file is given
	} else if k.TLS = boolVal("KAFKA_TLS"); !k.TLS && tlsFiles {
		bad("KAFKA_TLS", "false, but KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE or KAFKA_TLS_KEY_FILE is set: remove them or KAFKA_TLS")
	}
	if tc, err := parseTopicConfig(v["KAFKA_TOPIC_CONFIG"]); err != nil {
		bad("KAFKA_TOPIC_CONFIG", "%v", err)
	} else {
		k.TopicConfig = tc
	}
	if k.SASLMechanism == producer.SASLOAuthBearer {
		switch {
		case c.auth == "token":
			bad("KAFKA_SASL_MECHANISM", "OAUTHBEARER takes its token from the Entra ID credential, and MDE_ACCESS_TOKEN is a token for the Defender API only: use AZURE_CLIENT_SECRET, a certificate, workload or managed identity")
		case len(k.Brokers) > 0:
			c.kafkaScope = v["KAFKA_OAUTH_SCOPE"]
			if c.kafkaScope == "" {
				host, _, _ := net.SplitHostPort(k.Brokers[0])
				c.kafkaScope = "https://" + host + "/.default"
			}
		}
	} else if v["KAFKA_OAUTH_SCOPE"] != "" {
		c.warnings = append(c.warnings, "KAFKA_OAUTH_SCOPE is set but KAFKA_SASL_MECHANISM is not OAUTHBEARER: it is not used")
	}
	k.RetryMaxElapsed = c.retryMax
	if len(errs) == 0 {
		check := k
		if c.dryRun && len(check.Brokers) == 0 {
			// A dry run needs no broker; the rest of the Kafka settings
			// are still checked.
			check.Brokers = []string{"dry-run.invalid:9092"}
		}
		if err := check.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	c.kafka = k

	for _, s := range []string{c.cred.ClientSecret, c.cred.CertificatePassword, c.cred.AccessToken, k.SASLPassword, k.TLSKeyPassword} {
		if s != "" {
			c.secretsSeen = append(c.secretsSeen, s)
		}
	}
	if len(errs) > 0 {
		return nil, &usageError{errors.Join(errs...)}
	}
	c.effective = effectiveSettings(v)
	c.effective["TVM2KAFKA_WORKERS"] = strconv.Itoa(c.workers)
	return c, nil
}

// effectiveSettings returns every setting that has a value, secrets
// replaced by [REDACTED]: what the first log line of a run shows.
func effectiveSettings(v rawValues) map[string]string {
	out := map[string]string{}
	for _, s := range settings() {
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

// checkListenAddr accepts host:port and :port with a port number (0 picks
// a free port). Whether the address can be bound is checked when serve
// starts, before any network call.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port or :port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port number", addr)
	}
	return nil
}

// pickAuth chooses the credential kind. auto never falls back to managed
// identity silently: off Azure that would only time out.
func pickAuth(mode string, cr source.CredentialConfig) (string, error) {
	needApp := func(kind string) error {
		if cr.TenantID == "" || cr.ClientID == "" {
			return fmt.Errorf("MDE_AUTH: %s needs AZURE_TENANT_ID and AZURE_CLIENT_ID", kind)
		}
		return nil
	}
	switch strings.ToLower(mode) {
	case "auto", "":
		if present := credentialSettings(cr); len(present) > 1 {
			return "", fmt.Errorf("MDE_AUTH: %s are all set, so the credential to use is ambiguous: unset all but one, or choose with MDE_AUTH=token, client-secret, client-certificate or workload-identity", strings.Join(present, ", "))
		}
		switch {
		case cr.AccessToken != "":
			return "token", nil
		case cr.ClientSecret != "":
			return "client-secret", needApp("client-secret")
		case cr.CertificatePath != "":
			return "client-certificate", needApp("client-certificate")
		case cr.FederatedTokenFile != "":
			return "workload-identity", needApp("workload-identity")
		}
		return "", errors.New("no credentials: set MDE_ACCESS_TOKEN, or AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE, or MDE_AUTH=managed-identity")
	case "token":
		if cr.AccessToken == "" {
			return "", errors.New("MDE_AUTH=token needs MDE_ACCESS_TOKEN")
		}
		return "token", nil
	case "client-secret":
		if cr.ClientSecret == "" {
			return "", errors.New("MDE_AUTH=client-secret needs AZURE_CLIENT_SECRET")
		}
		return "client-secret", needApp("client-secret")
	case "client-certificate":
		if cr.CertificatePath == "" {
			return "", errors.New("MDE_AUTH=client-certificate needs AZURE_CLIENT_CERTIFICATE_PATH")
		}
		if _, err := os.Stat(cr.CertificatePath); err != nil {
			return "", fmt.Errorf("AZURE_CLIENT_CERTIFICATE_PATH: %w", err)
		}
		return "client-certificate", needApp("client-certificate")
	case "workload-identity":
		if cr.FederatedTokenFile == "" {
			return "", errors.New("MDE_AUTH=workload-identity needs AZURE_FEDERATED_TOKEN_FILE")
		}
		return "workload-identity", needApp("workload-identity")
	case "managed-identity":
		return "managed-identity", nil
	}
	return "", fmt.Errorf("MDE_AUTH: %q is not auto, token, client-secret, client-certificate, workload-identity or managed-identity", mode)
}

// credentialSettings names the credential-bearing settings that are set.
func credentialSettings(cr source.CredentialConfig) []string {
	var out []string
	for _, c := range []struct{ env, val string }{
		{"MDE_ACCESS_TOKEN", cr.AccessToken}, {"AZURE_CLIENT_SECRET", cr.ClientSecret},
		{"AZURE_CLIENT_CERTIFICATE_PATH", cr.CertificatePath}, {"AZURE_FEDERATED_TOKEN_FILE", cr.FederatedTokenFile},
	} {
		if c.val != "" {
			out = append(out, c.env)
		}
	}
	return out
}

// ignoredCredentials are warnings for credential settings that an
// explicit MDE_AUTH leaves unused.
func ignoredCredentials(auth string, cr source.CredentialConfig) []string {
	used := map[string]string{"token": "MDE_ACCESS_TOKEN", "client-secret": "AZURE_CLIENT_SECRET",
		"client-certificate": "AZURE_CLIENT_CERTIFICATE_PATH", "workload-identity": "AZURE_FEDERATED_TOKEN_FILE"}[auth]
	var out []string
	for _, env := range credentialSettings(cr) {
		if env != used {
			out = append(out, fmt.Sprintf("MDE_AUTH=%s: %s is set but not used", auth, env))
		}
	}
	return out
}

// parseTopicConfig reads KAFKA_TOPIC_CONFIG: key=value pairs separated by
// commas, keys as Kafka names them (retention.ms, cleanup.policy, …).
func parseTopicConfig(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" || strings.Trim(k, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" {
			return nil, fmt.Errorf("%q is not key=value with a topic config name such as retention.ms", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s is given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// checkURL accepts https URLs, and plain http only on loopback hosts
// (local fakes): a bearer token never crosses a network in clear text.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
		return fmt.Errorf("%q: plain http is allowed only for loopback hosts", raw)
	}
	return fmt.Errorf("%q is not an http(s) URL", raw)
}

// defaultScope is the contract's default scope, except for the US
// government hosts (GCC High, DoD), whose API is a resource of its own:
// there MDE_API_URL and AZURE_AUTHORITY_HOST are all a user has to set.
func defaultScope(apiURL string) string {
	const public = "https://api.securitycenter.microsoft.com/.default"
	u, err := url.Parse(apiURL)
	if err != nil {
		return public
	}
	if h := strings.ToLower(u.Hostname()); strings.HasSuffix(h, ".securitycenter.microsoft.us") {
		return "https://" + h + "/.default"
	}
	return public
}
