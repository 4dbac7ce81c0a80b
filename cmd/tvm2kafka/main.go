// Command tvm2kafka streams one snapshot of a Microsoft Defender
// Vulnerability Management "export via files" API into Kafka.
//
//	tvm2kafka run     one snapshot, then exit
//	tvm2kafka demo    the same pipeline against embedded fakes
//	tvm2kafka verify  reports the newest snapshot in the topic
//
// Flags and environment variables are read here and nowhere else; see
// `tvm2kafka --help` and README.md.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}
