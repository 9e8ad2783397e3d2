//! Knative Serving on one machine: controllers, router, activator, autoscaler and instance runtimes.
