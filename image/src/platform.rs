//! OCI platforms and the Rust targets that build them.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A platform an okonomi image can be built for (always Linux, static musl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    /// linux/amd64, `x86_64-unknown-linux-musl`, linked by the host toolchain.
    LinuxAmd64,
    /// linux/arm64, `aarch64-unknown-linux-musl`, linked by cargo-zigbuild.
    LinuxArm64,
    /// linux/riscv64, `riscv64gc-unknown-linux-musl`, linked by cargo-zigbuild.
    LinuxRiscv64,
}

impl Platform {
    /// The rustc target triple.
    pub fn rust_target(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "x86_64-unknown-linux-musl",
            Platform::LinuxArm64 => "aarch64-unknown-linux-musl",
            Platform::LinuxRiscv64 => "riscv64gc-unknown-linux-musl",
        }
    }

    /// The OCI `architecture` value.
    pub fn architecture(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "amd64",
            Platform::LinuxArm64 => "arm64",
            Platform::LinuxRiscv64 => "riscv64",
        }
    }

    /// The OCI `os` value.
    pub fn os(self) -> &'static str {
        "linux"
    }

    /// Whether the host (x86_64) can link it without zig.
    pub fn needs_zig(self) -> bool {
        // The host toolchain links x86_64 musl with its self-contained crt;
        // other architectures need a cross linker, which zig provides.
        self != Platform::LinuxAmd64 || !cfg!(target_arch = "x86_64")
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os(), self.architecture())
    }
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "linux/amd64" | "amd64" | "linux/x86_64" => Ok(Platform::LinuxAmd64),
            "linux/arm64" | "arm64" | "linux/arm64/v8" | "linux/aarch64" => {
                Ok(Platform::LinuxArm64)
            }
            "linux/riscv64" | "riscv64" => Ok(Platform::LinuxRiscv64),
            other => Err(Error::UnsupportedPlatform(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_platforms() {
        assert_eq!(
            "linux/arm64".parse::<Platform>().unwrap(),
            Platform::LinuxArm64
        );
        assert_eq!(Platform::LinuxAmd64.to_string(), "linux/amd64");
        let err = "windows/amd64".parse::<Platform>().unwrap_err().to_string();
        assert!(
            err.contains("unsupported platform \"windows/amd64\""),
            "{err}"
        );
    }
}
