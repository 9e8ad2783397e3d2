//! A Kubernetes-compatible API server for Knative Serving resources, with persistence and watches.
