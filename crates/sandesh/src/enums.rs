//! The enums of `vr.sandesh`. Thrift enums travel as `i32`; values this
//! crate does not know are kept in `Unknown` so that they survive a
//! decode/encode round trip.

use alloc::vec::Vec;

use crate::wire::{Reader, TType, Value};
use crate::DecodeError;

macro_rules! i32_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub enum $name {
            #[default]
            $( $(#[$vmeta])* $variant, )*
            /// A value this crate does not know (never one of the above).
            Unknown(i32),
        }

        impl From<i32> for $name {
            fn from(v: i32) -> Self {
                match v {
                    $( $value => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for i32 {
            fn from(v: $name) -> i32 {
                match v {
                    $( $name::$variant => $value, )*
                    $name::Unknown(other) => other,
                }
            }
        }

        impl Value for $name {
            const TTYPE: TType = TType::I32;
            fn encode(&self, out: &mut Vec<u8>) {
                i32::from(*self).encode(out);
            }
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(i32::decode(r)?.into())
            }
        }

        #[cfg(test)]
        impl proptest::arbitrary::Arbitrary for $name {
            type Parameters = ();
            type Strategy = proptest::strategy::BoxedStrategy<Self>;
            fn arbitrary_with(_: ()) -> Self::Strategy {
                use proptest::prelude::*;
                prop_oneof![0..8i32, any::<i32>()].prop_map($name::from).boxed()
            }
        }
    };
}

i32_enum! {
    /// `sandesh_op`: what a request asks for (the `h_op` field).
    pub enum SandeshOp {
        Add = 0,
        Get = 1,
        Del = 2,
        Dump = 3,
        Response = 4,
        Reset = 5,
    }
}

i32_enum! {
    /// `flow_op`: the operation of `vr_flow_req` and its responses.
    pub enum FlowOp {
        FlowSet = 0,
        FlowList = 1,
        FlowTableGet = 2,
    }
}
