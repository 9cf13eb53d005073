//! The answers of one netlink message, collected before framing.

use alloc::vec::Vec;
use core::ops::Range;

use sandesh::{Sandesh, SandeshOp, VrResponse};

use super::Errno;
use crate::VR_MESSAGE_DUMP_INCOMPLETE;

/// Encoded answers of the netlink message being handled: one byte buffer
/// and the range of each answer message in it (reused across calls).
#[derive(Debug, Default)]
pub(super) struct Answers {
    pub(super) buf: Vec<u8>,
    pub(super) parts: Vec<Range<usize>>,
    pub(super) failed: u32,
}

impl Answers {
    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.parts.clear();
    }

    pub(super) fn push<T: Sandesh>(&mut self, code: Errno, obj: Option<&T>) {
        let start = self.buf.len();
        VrResponse {
            h_op: SandeshOp::Response,
            resp_code: code,
        }
        .encode(&mut self.buf);
        if let Some(o) = obj {
            o.encode(&mut self.buf);
        }
        self.parts.push(start..self.buf.len());
        if code < 0 {
            self.failed += 1;
        }
    }

    /// A `vr_response` alone.
    pub(super) fn code(&mut self, code: Errno) {
        self.push::<VrResponse>(code, None);
    }

    pub(super) fn result(&mut self, r: Result<(), Errno>) {
        self.code(r.err().unwrap_or(0));
    }

    /// `vr_response` 0 then `obj` in one message.
    pub(super) fn object<T: Sandesh>(&mut self, obj: &T) {
        self.push(0, Some(obj));
    }

    /// `vr_response` `code` then `obj` in one message.
    pub(super) fn code_object<T: Sandesh>(&mut self, code: Errno, obj: &T) {
        self.push(code, Some(obj));
    }

    /// GET answer: the object, or the error alone.
    pub(super) fn get<T: Sandesh>(&mut self, r: Result<T, Errno>) {
        match r {
            Ok(o) => self.object(&o),
            Err(e) => self.code(e),
        }
    }

    /// One dump page of `items` (see the crate docs): the count message,
    /// then the objects' message if there are any.
    pub(super) fn dump<T: Sandesh>(&mut self, page: usize, items: impl Iterator<Item = T>) {
        let start = self.buf.len();
        let mut count: i32 = 0;
        let mut more = false;
        for item in items {
            let before = self.buf.len();
            item.encode(&mut self.buf);
            // At least one object per page, so a huge object cannot stall
            // the dump (upstream would answer "0, incomplete" forever).
            if count > 0 && self.buf.len() - start > page {
                self.buf.truncate(before);
                more = true;
                break;
            }
            count += 1;
        }
        let objects = start..self.buf.len();
        let code = if more {
            count | VR_MESSAGE_DUMP_INCOMPLETE
        } else {
            count
        };
        self.code(code);
        if count > 0 {
            self.parts.push(objects);
        }
    }
}
