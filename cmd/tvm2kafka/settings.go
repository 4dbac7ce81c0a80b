package main

import (
	"time"
)

// The settings are declared once, here, as typed structs whose tags say
// everything about a setting:
//
//	env      the environment variable ("" = a flag only)
//	flag     the flag, without its dashes
//	default  the default, as text ("" = none)
//	shown    the default as help and README show it, when it is not the text
//	enum     the values allowed (case-insensitive; stored as written here)
//	min, max the range of a whole number
//	secret   never printed; also read from the file named by env+"_FILE"
//	names    the library fields the setting feeds ("wire.Brokers"), whose
//	         messages name the setting through settingNames
//	help     one line of help
//	group    (on a struct field) the heading of its settings in --help
//
// --help, the README's configuration table, the flags, the environment,
// the _FILE variants, the redaction of the first log line and the checks
// of types, enums and ranges are derived from these declarations
// (declare.go). Checks that involve more than one setting are in
// config.go.

// runSettings are the settings of `tvm2kafka run` and `tvm2kafka serve`.
type runSettings struct {
	Azure    azureSettings    `group:"Defender API and Entra ID"`
	Kafka    kafkaSettings    `group:"Kafka"`
	Topics   topicSettings    `group:"Kafka"`
	Runs     runsSettings     `group:"Runs and serve"`
	Pipeline pipelineSettings `group:"Pipeline and logs"`
	Logs     logSettings      `group:"Pipeline and logs"`
}

// verifySettings are the settings of `tvm2kafka verify`: the Kafka
// connection and the logs of run, and verify's own flags.
type verifySettings struct {
	Kafka  kafkaSettings `group:"Kafka"`
	Logs   logSettings   `group:"Logs"`
	Verify struct {
		Export  string        `env:"MDE_EXPORT" flag:"mde-export" default:"InfoGatheringExport" help:"the export whose default topic is read when KAFKA_TOPIC is not set"`
		MaxAge  string        `flag:"max-age" help:"also fail when the snapshot's generatedTime is older than this (e.g. 26h, 2d)"`
		Output  string        `flag:"output" default:"text" enum:"text,json" help:"output format; json prints one JSON object on stdout"`
		Timeout time.Duration `flag:"timeout" default:"2m" help:"give up after this long"`
	} `group:"Verify"`
}

// demoSettings are the flags of `tvm2kafka demo`.
type demoSettings struct {
	Demo struct {
		Export      string `flag:"export" default:"InfoGatheringExport" help:"the export to generate and take: one of the nine of docs/exports.md (case-insensitive)"`
		Devices     int    `flag:"devices" default:"10000" min:"0" max:"100000000" help:"devices in the synthetic export (an export with several records per device has that many more records)"`
		Parts       int    `flag:"parts" default:"4" min:"1" max:"10000" help:"part files of the synthetic export"`
		Partitions  int    `flag:"partitions" default:"6" min:"1" max:"100000" help:"partitions of the demo topic"`
		Workers     int    `flag:"workers" shown:"the CPUs" min:"1" max:"256" help:"part files processed at once"`
		Compression string `flag:"compression" default:"lz4" enum:"none,gzip,snappy,lz4,zstd" help:"compression of the record batches"`
		Seed        int    `flag:"seed" default:"1" min:"-2147483648" max:"2147483647" help:"seed of the synthetic export"`
		LogLevel    string `flag:"log-level" default:"info" enum:"trace,debug,info,warn,error,fatal,panic,disabled" help:"log level"`
		LogFormat   string `flag:"log-format" default:"console" enum:"json,console" help:"log format"`
	} `group:"Demo"`
}

type azureSettings struct {
	TenantID            string `env:"AZURE_TENANT_ID" names:"source.TenantID" flag:"azure-tenant-id" help:"Entra ID tenant (directory) ID"`
	ClientID            string `env:"AZURE_CLIENT_ID" names:"source.ClientID" flag:"azure-client-id" help:"app (client) ID; with managed identity: a user-assigned identity's client ID"`
	ClientSecret        string `env:"AZURE_CLIENT_SECRET" names:"source.ClientSecret" flag:"azure-client-secret" secret:"true" help:"client secret (client-credentials flow)"`
	CertificatePath     string `env:"AZURE_CLIENT_CERTIFICATE_PATH" names:"source.CertificatePath" flag:"azure-client-certificate-path" help:"PEM or PKCS#12 certificate with its private key (certificate credential)"`
	CertificatePassword string `env:"AZURE_CLIENT_CERTIFICATE_PASSWORD" names:"source.CertificatePassword" flag:"azure-client-certificate-password" secret:"true" help:"password of a PKCS#12 certificate"`
	FederatedTokenFile  string `env:"AZURE_FEDERATED_TOKEN_FILE" names:"source.FederatedTokenFile" flag:"azure-federated-token-file" help:"workload identity token file (set by the AKS workload identity webhook)"`
	AuthorityHost       string `env:"AZURE_AUTHORITY_HOST" names:"source.AuthorityHost" flag:"azure-authority-host" shown:"public cloud" help:"Entra ID authority, e.g. https://login.microsoftonline.us for GCC High / DoD"`
	Auth                string `env:"MDE_AUTH" flag:"mde-auth" default:"auto" enum:"auto,token,client-secret,client-certificate,workload-identity,managed-identity" help:"the credential; auto uses the one that is set (managed identity only when asked for)"`
	APIURL              string `env:"MDE_API_URL" names:"source.BaseURL runner.APIURL" flag:"mde-api-url" default:"https://api.securitycenter.microsoft.com" help:"Defender API base URL (regional and government hosts too)"`
	TokenScope          string `env:"MDE_TOKEN_SCOPE" names:"source.Scope" flag:"mde-token-scope" shown:"https://api.securitycenter.microsoft.com/.default" help:"OAuth scope of the Defender API (for *.securitycenter.microsoft.us hosts: that host + /.default)"`
	AccessToken         string `env:"MDE_ACCESS_TOKEN" names:"source.AccessToken" flag:"mde-access-token" secret:"true" help:"bearer token obtained elsewhere; skips Entra ID"`
	SASValidHours       int    `env:"MDE_SAS_VALID_HOURS" names:"source.SASValidHours" flag:"mde-sas-valid-hours" shown:"not sent (the API's 3 hours)" min:"1" max:"24" help:"sasValidHours sent to the export API"`
	Export              string `env:"MDE_EXPORT" names:"source.Export runner.Export" flag:"mde-export" default:"InfoGatheringExport" help:"export to take, GET /api/machines/{export}: one of the nine of docs/exports.md (case-insensitive)"`
	Exports             string `env:"MDE_EXPORTS" flag:"mde-exports" help:"serve: several exports, comma-separated, each on its own topic (replaces MDE_EXPORT; the export API's limits are shared)"`
}

// kafkaSettings is the connection to the brokers: run, serve and verify.
type kafkaSettings struct {
	Brokers       string `env:"KAFKA_BROKERS" names:"wire.Brokers" flag:"kafka-brokers" shown:"required" help:"comma-separated host:port (a dry run needs none)"`
	Topic         string `env:"KAFKA_TOPIC" names:"wire.Topic" flag:"kafka-topic" shown:"the export's: mde.infogathering, mde.vulnerabilities, …" help:"target topic; created when missing; {export} stands for the export's short name (required with MDE_EXPORTS)"`
	SASLMechanism string `env:"KAFKA_SASL_MECHANISM" names:"wire.SASLMechanism" flag:"kafka-sasl-mechanism" enum:"PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER" help:"SASL mechanism; OAUTHBEARER takes a token from the Entra ID credential (Azure Event Hubs)"`
	SASLUsername  string `env:"KAFKA_SASL_USERNAME" names:"wire.SASLUsername" flag:"kafka-sasl-username" help:"SASL user (Azure Event Hubs: $ConnectionString)"`
	SASLPassword  string `env:"KAFKA_SASL_PASSWORD" names:"wire.SASLPassword" flag:"kafka-sasl-password" secret:"true" help:"SASL password (Event Hubs: the connection string)"`
	TLS           *bool  `env:"KAFKA_TLS" names:"wire.TLS" flag:"kafka-tls" shown:"off; on when a KAFKA_TLS_*_FILE is set" help:"TLS to the brokers, true or false; false together with a TLS file is refused"`
	TLSCAFile     string `env:"KAFKA_TLS_CA_FILE" names:"wire.TLSCAFile" flag:"kafka-tls-ca-file" shown:"system roots" help:"PEM CA bundle to verify the brokers"`
	TLSCertFile   string `env:"KAFKA_TLS_CERT_FILE" names:"wire.TLSCertFile" flag:"kafka-tls-cert-file" help:"PEM client certificate (mutual TLS)"`
	TLSKeyFile    string `env:"KAFKA_TLS_KEY_FILE" names:"wire.TLSKeyFile" flag:"kafka-tls-key-file" help:"PEM client key (mutual TLS); may be encrypted (KAFKA_TLS_KEY_PASSWORD)"`
	TLSKeyPass    string `env:"KAFKA_TLS_KEY_PASSWORD" names:"wire.TLSKeyPassword" flag:"kafka-tls-key-password" secret:"true" help:"password of an encrypted KAFKA_TLS_KEY_FILE (PKCS#8 or legacy PEM encryption)"`
}

// topicSettings are the Kafka settings of run and serve only.
type topicSettings struct {
	DLQTopic          string `env:"KAFKA_DLQ_TOPIC" names:"wire.DLQTopic" flag:"kafka-dlq-topic" help:"topic for rejected lines (optional; created when missing; {export} as in KAFKA_TOPIC)"`
	TableTopic        string `env:"KAFKA_TABLE_TOPIC" names:"wire.TableTopic" flag:"kafka-table-topic" help:"compacted topic holding the export's current state: one record per natural key, tombstones for removed ones (optional; created when missing with cleanup.policy=compact; {export} as in KAFKA_TOPIC)"`
	Compression       string `env:"KAFKA_COMPRESSION" names:"wire.Compression" flag:"kafka-compression" default:"lz4" enum:"none,gzip,snappy,lz4,zstd" help:"compression of the record batches"`
	Partitions        int    `env:"KAFKA_TOPIC_PARTITIONS" names:"wire.TopicPartitions" flag:"kafka-topic-partitions" default:"6" min:"1" max:"100000" help:"partitions of a topic this tool creates (an existing topic is used as it is)"`
	ReplicationFactor int    `env:"KAFKA_TOPIC_REPLICATION_FACTOR" names:"wire.TopicReplicationFactor" flag:"kafka-topic-replication-factor" default:"-1" min:"-1" max:"1000" help:"replication factor of a created topic; -1 = the broker's default"`
	TopicConfig       string `env:"KAFKA_TOPIC_CONFIG" names:"wire.TopicConfig" flag:"kafka-topic-config" help:"key=value,... topic configs of topics this tool creates, e.g. retention.ms=604800000,min.insync.replicas=2"`
	MaxMessageBytes   int    `env:"KAFKA_MAX_MESSAGE_BYTES" names:"wire.MaxMessageBytes producer.MaxMessageBytes" flag:"kafka-max-message-bytes" default:"1000000" min:"1024" max:"67108864" help:"largest record published: key, value and headers together; a line whose record is larger is rejected (at most the topic's max.message.bytes; Event Hubs: at most 1000000)"`
	ValueFormat       string `env:"KAFKA_VALUE_FORMAT" flag:"kafka-value-format" default:"raw" enum:"raw,json,avro,json-schema" help:"records' value: raw, the line byte for byte; json, normalised (JSON held in strings unpacked, Defender's timestamps as RFC 3339 UTC, every member kept); avro and json-schema, the typed record in the Confluent wire format, its schema registered in KAFKA_SCHEMA_REGISTRY_URL"`
	RegistryURL       string `env:"KAFKA_SCHEMA_REGISTRY_URL" names:"registry.URL" flag:"kafka-schema-registry-url" shown:"required for avro and json-schema" help:"Schema Registry (Confluent-compatible API; Apicurio Registry: .../apis/ccompat/v7); schemas registered under <topic>-value"`
	RegistryUser      string `env:"KAFKA_SCHEMA_REGISTRY_USERNAME" names:"registry.Username" flag:"kafka-schema-registry-username" help:"Schema Registry basic authentication user"`
	RegistryPassword  string `env:"KAFKA_SCHEMA_REGISTRY_PASSWORD" names:"registry.Password" flag:"kafka-schema-registry-password" secret:"true" help:"Schema Registry basic authentication password"`
	RegistryToken     string `env:"KAFKA_SCHEMA_REGISTRY_TOKEN" names:"registry.Token" flag:"kafka-schema-registry-token" secret:"true" help:"Schema Registry bearer token (instead of basic authentication)"`
	RegistryCAFile    string `env:"KAFKA_SCHEMA_REGISTRY_CA_FILE" names:"registry.CAFile" flag:"kafka-schema-registry-ca-file" shown:"system roots" help:"PEM CA bundle to verify an https Schema Registry"`
	CloudEvents       bool   `env:"TVM2KAFKA_CLOUDEVENTS" flag:"cloudevents" default:"false" help:"add the CloudEvents Kafka binding's binary-mode headers (ce_specversion, ce_id, ce_source, ce_type, ce_time, ce_subject) to every record and marker"`
	OAuthScope        string `env:"KAFKA_OAUTH_SCOPE" names:"wire.OAuthScope" flag:"kafka-oauth-scope" shown:"https://<host of the first broker>/.default" help:"OAuth scope of the OAUTHBEARER token (the Event Hubs convention by default)"`
}

type runsSettings struct {
	Force    bool          `env:"TVM2KAFKA_FORCE" names:"runner.Force" flag:"force" default:"false" help:"publish even when the topic already ends with a complete snapshot of the same export, or another run's lease is live"`
	Lease    time.Duration `env:"TVM2KAFKA_LEASE" names:"runner.Lease" flag:"lease" default:"15m" help:"an unfinished run whose newest message (Kafka timestamp) is younger than this is still publishing: a run refuses to start beside it; an older one is treated as dead"`
	Interval time.Duration `env:"TVM2KAFKA_INTERVAL" flag:"interval" default:"1h" help:"serve: time between snapshots (plus a jitter of up to 10 %); below 3m a warning, as the export API allows 20 calls an hour"`
	HTTPAddr string        `env:"TVM2KAFKA_HTTP_ADDR" flag:"http-addr" default:":8080" help:"serve: address of the HTTP endpoint (/metrics, /healthz, /readyz); 127.0.0.1:0 picks a free port, logged"`
}

type pipelineSettings struct {
	Workers    int           `env:"TVM2KAFKA_WORKERS" flag:"workers" shown:"CPUs usable, capped by memory" min:"1" max:"256" help:"part files processed at once; unset: GOMAXPROCS (the container's CPU limit), capped so that the workers fit the memory limit"`
	RetryMax   time.Duration `env:"TVM2KAFKA_RETRY_MAX_ELAPSED" names:"wire.RetryMaxElapsed producer.RetryMaxElapsed runner.RetryMax" flag:"retry-max-elapsed" default:"2m" help:"how long transient failures of one part or write are retried before the run fails"`
	DryRun     bool          `env:"TVM2KAFKA_DRY_RUN" flag:"dry-run" default:"false" help:"download, decompress and frame everything but publish nothing (no Kafka needed)"`
	CPUProfile string        `env:"TVM2KAFKA_CPU_PROFILE" flag:"cpu-profile" help:"write a runtime/pprof CPU profile of the run to this file (go tool pprof -top tvm2kafka FILE)"`
	MemProfile string        `env:"TVM2KAFKA_MEM_PROFILE" flag:"mem-profile" help:"write a runtime/pprof allocation profile (alloc_space and inuse_space) to this file at the end of the run"`
}

// logSettings: run, serve and verify.
type logSettings struct {
	Level  string `env:"LOG_LEVEL" flag:"log-level" default:"info" enum:"trace,debug,info,warn,error,fatal,panic,disabled" help:"zerolog level"`
	Format string `env:"LOG_FORMAT" flag:"log-format" default:"json" enum:"json,console" help:"log format"`
}
