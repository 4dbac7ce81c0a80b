// Package composecheck holds only tests: they load the repository's
// docker-compose.yml with the Compose specification's own Go loader
// (github.com/compose-spec/compose-go/v2) and read the Dockerfile, so that
// the container setup is checked on machines without a Docker engine.
package composecheck
