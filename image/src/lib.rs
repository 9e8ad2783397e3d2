//! Daemonless OCI image building and publishing for okonomi functions, in three
//! stages after ko: **build** a function crate into a [`BuiltImage`] (static musl
//! binary on a minimal base, reproducible), **publish** it to a registry over the
//! distribution API (or write an OCI layout), and **resolve** `okonomi://PATH`
//! references in YAML to the digests.
//!
//! ```no_run
//! # async fn f() -> okonomi_image::Result<()> {
//! use okonomi_image::{BuildOptions, PublishOptions, Registry, build_function, publish};
//! let image = build_function(&BuildOptions::new("functions/hello")).await?;
//! let registry = Registry::parse("127.0.0.1:5000/okonomi")?;
//! let published = publish(&image, &registry, &PublishOptions::default()).await?;
//! println!("{}", published.reference); // 127.0.0.1:5000/okonomi/hello@sha256:…
//! # Ok(()) }
//! ```

pub mod attach;
pub mod build;
pub mod cache;
pub mod cargo;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod image;
pub mod layer;
pub mod layout;
pub mod platform;
pub mod provenance;
pub mod publish;
pub mod resolve;
pub mod sbom;
pub mod signing;
pub mod source;
pub mod verify;

pub use build::{BuildOptions, BuiltImage, Supply, build_function};
pub use cargo::{CargoOutput, FunctionCrate};
pub use credentials::Credential;
pub use error::{Error, Result};
pub use layout::{LayoutImage, write_layout, write_layout_signed};
pub use platform::Platform;
pub use publish::{
    Attached, PublishOptions, Published, PushEvent, PushProgress, Registry, publish,
};
