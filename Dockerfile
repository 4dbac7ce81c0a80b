# syntax=docker/dockerfile:1
# tvm2kafka container image: a static Go binary on distroless, running as nonroot.
# The build image is pinned to go.mod's Go version: golang images build with
# GOTOOLCHAIN=local, so an older one could not build this module.
#   docker build -t tvm2kafka .
#   docker run --rm tvm2kafka demo
#   docker run --rm tvm2kafka version

FROM golang:1.26.8 AS build
WORKDIR /src
# Module downloads are cached in their own layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# `tvm2kafka version` and every run's first log line show these:
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg REVISION=$(git rev-parse HEAD) .
ARG VERSION=""
ARG REVISION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" -o /out/tvm2kafka ./cmd/tvm2kafka

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tvm2kafka /tvm2kafka
USER nonroot:nonroot
# tvm2kafka serve: /metrics, /healthz, /readyz (TVM2KAFKA_HTTP_ADDR, default :8080)
EXPOSE 8080
ENTRYPOINT ["/tvm2kafka"]
CMD ["run"]
