//! The Kubernetes REST API over a [`Store`](crate::Store).
