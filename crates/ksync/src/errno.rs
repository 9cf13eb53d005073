//! The errno values carried (negated) in `vr_response.resp_code`.
//!
//! Linux numbering on every platform: the ksync protocol is the same on
//! Linux and Windows here, and our clients decode these values themselves
//! rather than with the C library's `strerror` (whose Windows table
//! differs, e.g. `EOPNOTSUPP` is 130 there).

pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const EBADF: i32 = 9;
pub const ENOMEM: i32 = 12;
pub const EFAULT: i32 = 14;
pub const EBUSY: i32 = 16;
pub const EEXIST: i32 = 17;
pub const ENODEV: i32 = 19;
pub const EINVAL: i32 = 22;
pub const ENOSPC: i32 = 28;
pub const ERANGE: i32 = 34;
pub const EMSGSIZE: i32 = 90;
pub const EOPNOTSUPP: i32 = 95;
pub const ESTALE: i32 = 116;

/// A short description of `errno` (positive or negative), like
/// `strerror`, for the values a vRouter answers with.
pub fn describe(errno: i32) -> &'static str {
    match errno.unsigned_abs() {
        0 => "Success",
        1 => "Operation not permitted",
        2 => "No such file or directory",
        7 => "Argument list too long",
        9 => "Bad file descriptor",
        12 => "Cannot allocate memory",
        14 => "Bad address",
        16 => "Device or resource busy",
        17 => "File exists",
        19 => "No such device",
        22 => "Invalid argument",
        28 => "No space left on device",
        34 => "Numerical result out of range",
        90 => "Message too long",
        95 => "Operation not supported",
        116 => "Stale file handle",
        _ => "Unknown error",
    }
}
