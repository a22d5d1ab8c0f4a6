// Package mutate is the pure core of token-projector: it turns a Pod's
// annotations into a validated Spec and plans the additions that Spec makes to
// a Pod. It holds no client, no context and no HTTP, so every decision the
// webhook takes about a Pod can be tested from YAML alone.
package mutate
