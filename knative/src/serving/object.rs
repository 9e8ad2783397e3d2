//! What the four Knative kinds share: the wire format (`apiVersion`, `kind`,
//! `metadata`, `spec`, `status`), the k8s-openapi resource traits, and
//! [`KnativeObject`] for code that handles every kind alike.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::condition::{Condition, Conditions, condition_type};

/// Behaviour common to Service, Configuration, Revision and Route.
pub trait KnativeObject: k8s_openapi::Metadata<Ty = ObjectMeta> {
    /// The `spec` type of this kind.
    type Spec;
    /// The `status` type of this kind.
    type Status: Default;

    /// The desired state.
    fn spec(&self) -> &Self::Spec;
    /// The desired state, for changing.
    fn spec_mut(&mut self) -> &mut Self::Spec;
    /// The observed state, if a controller wrote one.
    fn status(&self) -> Option<&Self::Status>;
    /// The observed state, created empty when missing.
    fn status_mut(&mut self) -> &mut Self::Status;
    /// The status conditions (empty without a status).
    fn conditions(&self) -> &[Condition];
    /// `status.observedGeneration`.
    fn observed_generation(&self) -> Option<i64>;

    /// The `Ready` condition, if any.
    fn ready_condition(&self) -> Option<&Condition> {
        self.conditions().get_condition(condition_type::READY)
    }

    /// True when the `Ready` condition is `True` (whatever the generation).
    fn is_ready(&self) -> bool {
        self.conditions().is_true(condition_type::READY)
    }

    /// True when the controller has seen the latest spec
    /// (`status.observedGeneration == metadata.generation`), the check `kn`
    /// makes before it trusts `Ready`.
    fn is_reconciled(&self) -> bool {
        match (self.metadata().generation, self.observed_generation()) {
            (Some(generation), Some(observed)) => generation == observed,
            (None, _) => true,
            (Some(_), None) => false,
        }
    }
}

/// The shape every kind has on the wire; `apiVersion` and `kind` are checked
/// when present and may be left out (as in a request body the URL already
/// names).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Wire<Spec, Status> {
    pub(crate) api_version: Option<String>,
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    #[serde(default)]
    pub(crate) spec: Spec,
    #[serde(default)]
    pub(crate) status: Option<Status>,
}

impl<Spec, Status> Wire<Spec, Status> {
    pub(crate) fn check<E: serde::de::Error>(&self, kind: &str) -> Result<(), E> {
        if let Some(api_version) = &self.api_version
            && api_version != crate::keys::API_VERSION
        {
            return Err(E::custom(format!(
                "apiVersion {api_version:?} is not {:?}",
                crate::keys::API_VERSION
            )));
        }
        if let Some(found) = &self.kind
            && found != kind
        {
            return Err(E::custom(format!("kind {found:?} is not {kind:?}")));
        }
        Ok(())
    }
}

/// Declares one Knative kind: the struct, the k8s-openapi traits, serde and
/// [`KnativeObject`].
macro_rules! knative_resource {
    (
        $(#[$doc:meta])*
        $name:ident { spec: $spec:ty, status: $status:ty, kind: $kind:literal, plural: $plural:literal }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            /// Standard object metadata.
            pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            /// The desired state.
            pub spec: $spec,
            /// The observed state, written by the controllers.
            pub status: Option<$status>,
        }

        impl $name {
            /// An object with the given name and spec, no namespace and no status.
            pub fn new(name: &str, spec: $spec) -> Self {
                Self {
                    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(name.to_owned()),
                        ..Default::default()
                    },
                    spec,
                    status: None,
                }
            }

            /// `metadata.name`, or `""` when unset.
            pub fn name(&self) -> &str {
                self.metadata.name.as_deref().unwrap_or_default()
            }

            /// `metadata.namespace`, or `""` when unset.
            pub fn namespace(&self) -> &str {
                self.metadata.namespace.as_deref().unwrap_or_default()
            }
        }

        impl k8s_openapi::Resource for $name {
            const API_VERSION: &'static str = crate::keys::API_VERSION;
            const GROUP: &'static str = crate::keys::GROUP;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = crate::keys::VERSION;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::ListableResource for $name {
            const LIST_KIND: &'static str = concat!($kind, "List");
        }

        impl k8s_openapi::Metadata for $name {
            type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct;
                let fields = if self.status.is_some() { 5 } else { 4 };
                let mut state = serializer.serialize_struct($kind, fields)?;
                state.serialize_field("apiVersion", crate::keys::API_VERSION)?;
                state.serialize_field("kind", $kind)?;
                state.serialize_field("metadata", &self.metadata)?;
                state.serialize_field("spec", &self.spec)?;
                if let Some(status) = &self.status {
                    state.serialize_field("status", status)?;
                }
                state.end()
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let wire = crate::serving::object::Wire::<$spec, $status>::deserialize(deserializer)?;
                wire.check::<D::Error>($kind)?;
                Ok(Self { metadata: wire.metadata, spec: wire.spec, status: wire.status })
            }
        }

        impl crate::serving::KnativeObject for $name {
            type Spec = $spec;
            type Status = $status;

            fn spec(&self) -> &$spec {
                &self.spec
            }

            fn spec_mut(&mut self) -> &mut $spec {
                &mut self.spec
            }

            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }

            fn status_mut(&mut self) -> &mut $status {
                self.status.get_or_insert_with(Default::default)
            }

            fn conditions(&self) -> &[crate::serving::Condition] {
                self.status.as_ref().map(|status| status.conditions.as_slice()).unwrap_or_default()
            }

            fn observed_generation(&self) -> Option<i64> {
                self.status.as_ref().and_then(|status| status.observed_generation)
            }
        }
    };
}

pub(crate) use knative_resource;
