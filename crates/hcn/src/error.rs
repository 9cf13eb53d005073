//! The error of every [`crate::Hcn`] call.

use crate::schema::ErrorRecord;

/// HRESULTs HNS returns that callers branch on (values from `winerror.h`,
/// here so that the checks also build and test off Windows).
pub mod hresult {
    /// `HRESULT_FROM_WIN32(ERROR_NOT_FOUND)`, "Element not found.".
    pub const ERROR_NOT_FOUND: i32 = 0x8007_0490_u32 as i32;
    /// `HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)`.
    pub const FILE_NOT_FOUND: i32 = 0x8007_0002_u32 as i32;
    pub const HCN_E_NETWORK_NOT_FOUND: i32 = 0x803B_0001_u32 as i32;
    pub const HCN_E_ENDPOINT_NOT_FOUND: i32 = 0x803B_0002_u32 as i32;
    pub const HCN_E_SWITCH_NOT_FOUND: i32 = 0x803B_0004_u32 as i32;
    pub const HCN_E_ADAPTER_NOT_FOUND: i32 = 0x803B_0006_u32 as i32;
    pub const HCN_E_NETWORK_ALREADY_EXISTS: i32 = 0x803B_0010_u32 as i32;
    pub const HCN_E_PORT_ALREADY_EXISTS: i32 = 0x803B_0013_u32 as i32;
    pub const HCN_E_INVALID_JSON: i32 = 0x803B_001B_u32 as i32;
    pub const HCN_E_SWITCH_EXTENSION_NOT_FOUND: i32 = 0x803B_001F_u32 as i32;
    pub const HCN_E_ENTITY_HAS_REFERENCES: i32 = 0x803B_002C_u32 as i32;
    /// `E_FAIL`.
    pub const E_FAIL: i32 = 0x8000_4005_u32 as i32;
}

#[derive(Debug, thiserror::Error)]
pub enum HcnError {
    /// An `Hcn*` call failed: its HRESULT and HNS's error record text.
    #[error("{call} failed: HRESULT 0x{:08X}{}", *.hresult as u32, record_suffix(.record))]
    Call {
        call: &'static str,
        hresult: i32,
        /// The raw error record (usually JSON), if HNS returned one.
        record: Option<String>,
    },
    /// `computenetwork.dll` or one of its functions is missing: not
    /// Windows Server 2019+/Windows 10 1809+ (or Wine, which has no HNS).
    #[error("HCN API unavailable: {0}")]
    Unavailable(String),
    /// HNS answered JSON we cannot read.
    #[error("{call}: unexpected JSON from HNS: {source}")]
    Json {
        call: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A document we were asked to send does not serialise.
    #[error("cannot encode the {what} document: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A document misses something the call needs.
    #[error("invalid request: {0}")]
    Invalid(String),
}

fn record_suffix(record: &Option<String>) -> String {
    match record {
        None => String::new(),
        Some(text) => match ErrorRecord::parse(text).and_then(|r| r.error) {
            Some(msg) => format!(": {}", msg.trim()),
            None => format!(": {}", text.trim()),
        },
    }
}

impl ErrorRecord {
    /// Parses an error record; `None` if it is not a JSON object.
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

impl HcnError {
    /// The HRESULT, for [`HcnError::Call`].
    pub fn hresult(&self) -> Option<i32> {
        match self {
            Self::Call { hresult, .. } => Some(*hresult),
            _ => None,
        }
    }

    /// The object the call was about does not exist (any of HNS's "not
    /// found" codes; HNS has used several for the same situation).
    pub fn is_not_found(&self) -> bool {
        use hresult::*;
        matches!(
            self.hresult(),
            Some(
                ERROR_NOT_FOUND
                    | FILE_NOT_FOUND
                    | HCN_E_NETWORK_NOT_FOUND
                    | HCN_E_ENDPOINT_NOT_FOUND
            )
        )
    }

    /// The parsed error record, if there is one and it is JSON.
    pub fn record(&self) -> Option<ErrorRecord> {
        match self {
            Self::Call {
                record: Some(text), ..
            } => ErrorRecord::parse(text),
            _ => None,
        }
    }
}
