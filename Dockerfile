# syntax=docker/dockerfile:1
# tvm2kafka container image: a static Go binary on distroless, running as nonroot.
# The build image is pinned to go.mod's Go version: golang images build with
# GOTOOLCHAIN=local, so an older one could not build this module.
#   docker build -t tvm2kafka .
#   docker run --rm tvm2kafka demo

FROM golang:1.26.8 AS build
WORKDIR /src
# Module downloads are cached in their own layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/tvm2kafka ./cmd/tvm2kafka

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tvm2kafka /tvm2kafka
USER nonroot:nonroot
ENTRYPOINT ["/tvm2kafka"]
CMD ["run"]
