package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/runner"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/registry"
	"github.com/tvm2kafka/tvm2kafka/schema"
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

// config is the validated configuration of one run: the declared
// settings as given (runSettings, normalised) and what is derived from
// them.
type config struct {
	runSettings
	exports     []schema.Export // MDE_EXPORT, or every export of MDE_EXPORTS
	auth        string          // MDE_AUTH's value for the credential chosen
	cred        source.CredentialConfig
	kafka       wire.Config
	registry    *registry.Config // the typed value formats' Schema Registry
	workers     int              // TVM2KAFKA_WORKERS, or derived from res
	logLevel    zerolog.Level
	logFormat   string
	secretsSeen []string // values to scrub from anything printed
	kafkaScope  string   // KAFKA_OAUTH_SCOPE (or its default) with OAUTHBEARER
	warnings    []string // settings that are set but not used, logged at start

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
	list := settings()
	var in runSettings
	errs := decode(list, v, &in)
	bad := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{env}, args...)...))
	}
	in.Runs.HTTPAddr = strings.TrimSpace(in.Runs.HTTPAddr)
	in.Azure.APIURL = strings.TrimRight(in.Azure.APIURL, "/")
	c := &config{runSettings: in, logFormat: in.Logs.Format, workers: in.Pipeline.Workers, res: detectResources()}
	c.logLevel, _ = zerolog.ParseLevel(in.Logs.Level)
	if err := checkListenAddr(in.Runs.HTTPAddr); err != nil {
		bad("TVM2KAFKA_HTTP_ADDR", "%v", err)
	}

	// Defender API: the exports and their topics.
	if in.Azure.Exports != "" {
		if !strings.EqualFold(v["MDE_EXPORT"], schema.ExportInfoGathering) {
			bad("MDE_EXPORTS", "set together with MDE_EXPORT: set one of them")
		}
		seen := map[string]bool{}
		for _, name := range strings.Split(in.Azure.Exports, ",") {
			e, err := lookupExport("MDE_EXPORTS", strings.TrimSpace(name))
			switch {
			case err != nil:
				errs = append(errs, err)
			case seen[e.Name]:
				bad("MDE_EXPORTS", "%s is listed twice", e.Name)
			default:
				seen[e.Name] = true
				c.exports = append(c.exports, e)
			}
		}
	} else if e, err := lookupExport("MDE_EXPORT", in.Azure.Export); err != nil {
		errs = append(errs, err)
	} else {
		c.exports = []schema.Export{e}
		c.Azure.Export = e.Name
	}
	if len(c.exports) > 1 {
		for _, t := range []struct{ env, v string }{{"KAFKA_TOPIC", in.Kafka.Topic}, {"KAFKA_DLQ_TOPIC", in.Topics.DLQTopic}, {"KAFKA_TABLE_TOPIC", in.Topics.TableTopic}} {
			if t.v != "" && !strings.Contains(t.v, exportPlaceholder) {
				bad(t.env, "%q names one topic for the %d exports of MDE_EXPORTS: use %s in it, e.g. mde.%s.table", t.v, len(c.exports), exportPlaceholder, exportPlaceholder)
			}
		}
	}
	if err := checkURL(in.Azure.APIURL); err != nil {
		bad("MDE_API_URL", "%v", err)
	}
	az := in.Azure
	scope := az.TokenScope
	if scope == "" {
		scope = defaultScope(in.Azure.APIURL)
	}
	c.cred = source.CredentialConfig{
		Names:               settingNames(),
		TenantID:            az.TenantID,
		ClientID:            az.ClientID,
		ClientSecret:        az.ClientSecret,
		CertificatePath:     az.CertificatePath,
		CertificatePassword: az.CertificatePassword,
		FederatedTokenFile:  az.FederatedTokenFile,
		AuthorityHost:       strings.TrimRight(az.AuthorityHost, "/"),
		AccessToken:         az.AccessToken,
		Scope:               scope,
	}
	if h := c.cred.AuthorityHost; h != "" {
		if u, err := url.Parse(h); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("AZURE_AUTHORITY_HOST", "%q is not an https URL", h)
		}
	}
	var err error
	if az.Auth != "" { // "" only when MDE_AUTH itself is invalid
		c.auth, c.cred.Kind, err = chooseCredential(az.Auth, c.cred)
		if err != nil {
			errs = append(errs, err)
		} else {
			c.warnings = append(c.warnings, ignoredCredentials(c.auth, c.cred)...)
			// Builds the credential without a network call: a missing
			// setting of the chosen kind, or a certificate that cannot be
			// used (unparseable, wrong password), is a configuration
			// error, found here rather than inside the run.
			if _, _, err := source.NewTokenSource(c.cred); err != nil {
				errs = append(errs, err)
			}
		}
	}

	// Kafka.
	k, kerrs := kafkaConfig(in.Kafka)
	errs = append(errs, kerrs...)

	if len(k.Brokers) == 0 && !in.Pipeline.DryRun {
		bad("KAFKA_BROKERS", "required (comma-separated host:port), or set TVM2KAFKA_DRY_RUN=true")
	}
	t := in.Topics
	k.DLQTopic, k.TableTopic, k.Compression = t.DLQTopic, t.TableTopic, t.Compression
	k.TopicPartitions, k.TopicReplicationFactor, k.MaxMessageBytes = t.Partitions, t.ReplicationFactor, t.MaxMessageBytes
	if strings.TrimSpace(v["KAFKA_TOPIC_REPLICATION_FACTOR"]) == "0" {
		bad("KAFKA_TOPIC_REPLICATION_FACTOR", "0 is not allowed; -1 means the broker's default")
	}
	if c.workers == 0 {
		c.workers, c.workersAuto = autoWorkers(c.res, k.MaxMessageBytes), true
	}
	if tc, err := parseTopicConfig(t.TopicConfig); err != nil {
		bad("KAFKA_TOPIC_CONFIG", "%v", err)
	} else {
		k.TopicConfig = tc
	}
	if k.SASLMechanism == wire.SASLOAuthBearer {
		switch {
		case c.cred.Kind == source.KindAccessToken:
			bad("KAFKA_SASL_MECHANISM", "OAUTHBEARER takes its token from the Entra ID credential, and MDE_ACCESS_TOKEN is a token for the Defender API only: use AZURE_CLIENT_SECRET, a certificate, workload or managed identity")
		case len(k.Brokers) > 0:
			c.kafkaScope = t.OAuthScope
			if c.kafkaScope == "" {
				host, _, _ := net.SplitHostPort(k.Brokers[0])
				c.kafkaScope = "https://" + host + "/.default"
			}
		}
	} else if t.OAuthScope != "" {
		c.warnings = append(c.warnings, "KAFKA_OAUTH_SCOPE is set but KAFKA_SASL_MECHANISM is not OAUTHBEARER: it is not used")
	}
	k.RetryMaxElapsed = in.Pipeline.RetryMax
	c.registry, err = registryConfig(t, in.Pipeline.DryRun)
	if err != nil {
		errs = append(errs, err)
	}
	if f, _ := schema.ParseValueFormat(t.ValueFormat); !f.Registered() && t.RegistryURL != "" {
		c.warnings = append(c.warnings, "KAFKA_SCHEMA_REGISTRY_URL is set but KAFKA_VALUE_FORMAT is "+t.ValueFormat+": no schema is registered")
	}
	for _, e := range c.exports {
		if len(errs) > 0 {
			break
		}
		check := kafkaForExport(k, in, e)
		if in.Pipeline.DryRun && len(check.Brokers) == 0 {
			// A dry run needs no broker; the rest of the Kafka settings
			// are still checked.
			check.Brokers = []string{"dry-run.invalid:9092"}
		}
		if err := check.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	c.kafka = k
	if len(c.exports) > 0 {
		c.kafka = kafkaForExport(k, in, c.exports[0])
	}
	c.secretsSeen = secretsOf(list, v)
	if err := joinErrors(errs); err != nil {
		return nil, err
	}
	c.effective = effectiveSettings(list, v)
	c.effective["TVM2KAFKA_WORKERS"] = strconv.Itoa(c.workers)
	return c, nil
}

// exportPlaceholder in a topic setting stands for the export's short name.
const exportPlaceholder = "{export}"

// lookupExport finds the export named name (case-insensitively) or says
// which names there are.
func lookupExport(env, name string) (schema.Export, error) {
	if e, ok := schema.LookupExport(name); ok {
		return e, nil
	}
	return schema.Export{}, fmt.Errorf("%s: %q is not an export; the exports are %s", env, name, strings.Join(schema.ExportNames(), ", "))
}

// exportTopic is the topic setting v for export e: its default topic
// when v is empty, v with {export} replaced otherwise.
func exportTopic(v string, e schema.Export) string {
	if v == "" {
		return e.Topic()
	}
	return strings.ReplaceAll(v, exportPlaceholder, e.Short)
}

// forExport returns the configuration of the runs of export e: the
// export and its topics (KAFKA_TOPIC, KAFKA_DLQ_TOPIC and
// KAFKA_TABLE_TOPIC with {export} replaced).
func (c *config) forExport(e schema.Export) *config {
	cc := *c
	cc.Azure.Export = e.Name
	cc.kafka = kafkaForExport(c.kafka, c.runSettings, e)
	return &cc
}

// kafkaForExport is k with the topics of export e.
func kafkaForExport(k wire.Config, in runSettings, e schema.Export) wire.Config {
	k.Topic = exportTopic(in.Kafka.Topic, e)
	if in.Topics.DLQTopic != "" {
		k.DLQTopic = exportTopic(in.Topics.DLQTopic, e)
	}
	if in.Topics.TableTopic != "" {
		k.TableTopic = exportTopic(in.Topics.TableTopic, e)
	}
	return k
}

// kafkaConfig turns the connection settings shared by run, serve and
// verify into a wire.Config with defaults elsewhere. Whether
// KAFKA_BROKERS may be empty is the caller's to say.
func kafkaConfig(in kafkaSettings) (wire.Config, []error) {
	k := wire.Config{Names: settingNames()}
	var errs []error
	if b := strings.TrimSpace(in.Brokers); b != "" {
		for _, h := range strings.Split(b, ",") {
			h = strings.TrimSpace(h)
			if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
				errs = append(errs, fmt.Errorf("KAFKA_BROKERS: %q is not host:port", h))
			}
			k.Brokers = append(k.Brokers, h)
		}
	}
	k.Topic = in.Topic
	k.SASLMechanism, k.SASLUsername, k.SASLPassword = in.SASLMechanism, in.SASLUsername, in.SASLPassword
	k.TLSCAFile, k.TLSCertFile, k.TLSKeyFile, k.TLSKeyPassword = in.TLSCAFile, in.TLSCertFile, in.TLSKeyFile, in.TLSKeyPass
	tlsFiles := k.TLSCAFile != "" || k.TLSCertFile != "" || k.TLSKeyFile != ""
	switch {
	case in.TLS == nil:
		k.TLS = tlsFiles // unset: on when a TLS file is given
	case !*in.TLS && tlsFiles:
		errs = append(errs, errors.New("KAFKA_TLS: false, but KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE or KAFKA_TLS_KEY_FILE is set: remove them or KAFKA_TLS"))
	default:
		k.TLS = *in.TLS
	}
	return k, errs
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

// credentialKinds maps the values of MDE_AUTH to the credential each
// names, and each credential to the setting that selects it in auto mode
// ("" for managed identity, which auto never picks: off Azure it would
// only time out).
var credentialKinds = []struct {
	auth string
	kind source.CredentialKind
	env  string
}{
	{"token", source.KindAccessToken, "MDE_ACCESS_TOKEN"},
	{"client-secret", source.KindClientSecret, "AZURE_CLIENT_SECRET"},
	{"client-certificate", source.KindCertificate, "AZURE_CLIENT_CERTIFICATE_PATH"},
	{"workload-identity", source.KindWorkloadIdentity, "AZURE_FEDERATED_TOKEN_FILE"},
	{"managed-identity", source.KindManagedIdentity, ""},
}

// chooseCredential is the one place where the credential is chosen: the
// kind MDE_AUTH names, or with auto the one credential whose setting is
// set. Whether the chosen credential has all it needs is checked by
// source.NewTokenSource.
func chooseCredential(auth string, cr source.CredentialConfig) (string, source.CredentialKind, error) {
	if auth != "auto" {
		for _, k := range credentialKinds {
			if k.auth == auth {
				return k.auth, k.kind, nil
			}
		}
	}
	present := credentialSettings(cr)
	switch len(present) {
	case 0:
		return "", "", errors.New("no credentials: set MDE_ACCESS_TOKEN, or AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE, or MDE_AUTH=managed-identity")
	case 1:
		for _, k := range credentialKinds {
			if k.env == present[0] {
				return k.auth, k.kind, nil
			}
		}
	}
	return "", "", fmt.Errorf("MDE_AUTH: %s are all set, so the credential to use is ambiguous: unset all but one, or choose with MDE_AUTH=token, client-secret, client-certificate or workload-identity", strings.Join(present, ", "))
}

// credentialSettings names the credential-selecting settings that are set.
func credentialSettings(cr source.CredentialConfig) []string {
	val := map[string]string{"MDE_ACCESS_TOKEN": cr.AccessToken, "AZURE_CLIENT_SECRET": cr.ClientSecret,
		"AZURE_CLIENT_CERTIFICATE_PATH": cr.CertificatePath, "AZURE_FEDERATED_TOKEN_FILE": cr.FederatedTokenFile}
	var out []string
	for _, k := range credentialKinds {
		if k.env != "" && val[k.env] != "" {
			out = append(out, k.env)
		}
	}
	return out
}

// ignoredCredentials are warnings for credential settings that an
// explicit MDE_AUTH leaves unused.
func ignoredCredentials(auth string, cr source.CredentialConfig) []string {
	var out []string
	for _, env := range credentialSettings(cr) {
		for _, k := range credentialKinds {
			if k.env == env && k.kind != cr.Kind {
				out = append(out, fmt.Sprintf("MDE_AUTH=%s: %s is set but not used", auth, env))
			}
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
	const public = source.DefaultTokenScope // the Defender API's documented scope
	u, err := url.Parse(apiURL)
	if err != nil {
		return public
	}
	if h := strings.ToLower(u.Hostname()); strings.HasSuffix(h, ".securitycenter.microsoft.us") {
		return "https://" + h + "/.default"
	}
	return public
}

// registryConfig is the Schema Registry of the typed value formats; nil
// for the others.
func registryConfig(t topicSettings, dryRun bool) (*registry.Config, error) {
	f, _ := schema.ParseValueFormat(t.ValueFormat)
	if !f.Registered() {
		return nil, nil
	}
	switch {
	case t.RegistryURL == "":
		return nil, fmt.Errorf("KAFKA_SCHEMA_REGISTRY_URL: required with KAFKA_VALUE_FORMAT=%s (the schema's id is in every value)", t.ValueFormat)
	case t.RegistryToken != "" && (t.RegistryUser != "" || t.RegistryPassword != ""):
		return nil, errors.New("KAFKA_SCHEMA_REGISTRY_TOKEN: set either it or KAFKA_SCHEMA_REGISTRY_USERNAME and _PASSWORD, not both")
	case t.RegistryPassword != "" && t.RegistryUser == "":
		return nil, errors.New("KAFKA_SCHEMA_REGISTRY_PASSWORD: set without KAFKA_SCHEMA_REGISTRY_USERNAME")
	}
	if err := checkURL(t.RegistryURL); err != nil {
		return nil, fmt.Errorf("KAFKA_SCHEMA_REGISTRY_URL: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if t.RegistryCAFile != "" {
		pem, err := os.ReadFile(t.RegistryCAFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_SCHEMA_REGISTRY_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KAFKA_SCHEMA_REGISTRY_CA_FILE: no PEM certificate in %s", t.RegistryCAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &registry.Config{
		URL: t.RegistryURL, Username: t.RegistryUser, Password: t.RegistryPassword, Token: t.RegistryToken,
		HTTPClient: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		UserAgent:  "tvm2kafka",
	}, nil
}

// runner is the configuration of one run, for runner.Run.
func (c *config) runner() runner.Config {
	return runner.Config{
		Credential:    c.cred,
		KafkaScope:    c.kafkaScope,
		APIURL:        c.Azure.APIURL,
		Export:        c.Azure.Export,
		SASValidHours: c.Azure.SASValidHours,
		Kafka:         c.kafka,
		DryRun:        c.Pipeline.DryRun,
		CloudEvents:   c.Topics.CloudEvents,
		ValueFormat:   c.Topics.ValueFormat,
		Registry:      c.registry,
		Workers:       c.workers,
		RetryMax:      c.Pipeline.RetryMax,
		Lease:         c.Runs.Lease,
		Force:         c.Runs.Force,
		Names:         settingNames(),
	}
}
