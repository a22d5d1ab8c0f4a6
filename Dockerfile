# syntax=docker/dockerfile:1
# Two stages: a static, trimmed build of the webhook, then a distroless base
# with no shell and no package manager, running as the nonroot user 65532.
# test/e2e builds the binary the same way (CGO_ENABLED=0, -trimpath) and
# test/install checks that it is static and that .dockerignore lets in every
# package it needs.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
# Dependencies first: this layer is reused while go.mod and go.sum are unchanged.
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY pkg/ pkg/
COPY internal/ internal/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o webhook ./cmd/webhook

# Pinned by digest: the same Dockerfile builds the same base. make image
# builds the same image without Docker (hack/image, on this base), and
# test/install checks that both describe it alike.
FROM gcr.io/distroless/static:nonroot@sha256:e2e927ec666bae08560abb3c55d0659eceabb657f56b6782ab500a9fc7f555e3
WORKDIR /
COPY --from=builder /workspace/webhook /webhook
USER 65532:65532
ENTRYPOINT ["/webhook"]
