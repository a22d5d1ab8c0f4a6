// Package release publishes a release of token-projector to an OCI
// registry (make release, hack/release): the webhook built for every
// platform into one reproducible image index, an SBOM of each binary
// attached to its image, cosign signatures of the index and of the chart,
// and last the chart itself, which names the index by digest. Pushing the
// chart last means a release that failed half-way has no chart pointing at
// a missing or unsigned image.
package release
