//! Certificates and the bearer token of the API server.
