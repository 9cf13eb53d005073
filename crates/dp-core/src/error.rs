//! Errors of the configuration API. Each maps to the negative errno that the
//! ksync channel returns in `vr_response.resp_code`, like upstream.

use core::fmt;

/// A configuration request that could not be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The object does not exist.
    NotFound(&'static str),
    /// An index or id is outside the table sized at creation.
    OutOfRange(&'static str),
    /// A field has a value the datapath does not support.
    Invalid(&'static str),
    /// The table is full.
    NoSpace(&'static str),
    /// The request names a stale object (generation mismatch).
    Stale(&'static str),
    /// The object is already taken (a VLAN already used on a parent).
    Exists(&'static str),
}

impl ConfigError {
    /// The negative errno upstream returns for this condition.
    pub fn errno(&self) -> i32 {
        match self {
            ConfigError::NotFound(_) => -2,    // ENOENT
            ConfigError::OutOfRange(_) => -34, // ERANGE
            ConfigError::Invalid(_) => -22,    // EINVAL
            ConfigError::NoSpace(_) => -28,    // ENOSPC
            ConfigError::Stale(_) => -116,     // ESTALE
            ConfigError::Exists(_) => -17,     // EEXIST
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotFound(what) => write!(f, "{what}: no such object"),
            ConfigError::OutOfRange(what) => write!(f, "{what}: index out of range"),
            ConfigError::Invalid(what) => write!(f, "invalid {what}"),
            ConfigError::NoSpace(what) => write!(f, "{what}: table full"),
            ConfigError::Stale(what) => write!(f, "{what}: stale generation"),
            ConfigError::Exists(what) => write!(f, "{what}: already in use"),
        }
    }
}

impl core::error::Error for ConfigError {}
