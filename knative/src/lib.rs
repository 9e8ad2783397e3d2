//! Knative Serving resource types, rendering of functions into Services, and validation.
