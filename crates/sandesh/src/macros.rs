/// Declares a Sandesh object (or a plain Thrift struct) from a field table
/// written like the `.sandesh` file: `id: wire_type name: RustType`.
///
/// ```
/// use sandesh::{sandesh, Sandesh, SandeshOp};
///
/// sandesh! {
///     /// `buffer sandesh my_req { 1: sandesh_op h_op; 2: list<byte> mac; }`
///     pub struct MyReq = "my_req" {
///         1: sandesh_op h_op: SandeshOp,
///         2: list<byte> mac: Vec<u8>,
///     }
/// }
///
/// let req = MyReq { h_op: SandeshOp::Get, mac: vec![1, 2] };
/// let bytes = req.to_bytes();
/// assert_eq!(MyReq::decode(&bytes).unwrap(), (req, bytes.len()));
/// ```
///
/// With `= "name"` the type is a sandesh object: it implements
/// [`Sandesh`](crate::Sandesh) and is encoded as its name followed by its
/// fields. Without it, it is a plain struct usable as a field type
/// ([`Value`](crate::Value) with type `STRUCT`).
///
/// Wire types are the `.sandesh` names: `bool byte i16 i32 i64 u16 u32 u64
/// string ipv4 ipaddr uuid_t sandesh_op flow_op list<T>`; any other name is
/// taken as a struct. The macro checks at compile time that each Rust type
/// has the declared wire type and that ids are strictly ascending (upstream
/// writes fields in declaration order, which is ascending in `vr.sandesh`).
///
/// ```compile_fail
/// // i32 declared as i16: rejected at compile time.
/// sandesh::sandesh! { pub struct Bad = "bad" { 1: i16 x: i32 } }
/// ```
///
/// ```compile_fail
/// // list<byte> held in a Vec<i32>: rejected.
/// sandesh::sandesh! { pub struct Bad = "bad" { 1: list<byte> x: Vec<i32> } }
/// ```
///
/// ```compile_fail
/// // Ids out of order: rejected.
/// sandesh::sandesh! { pub struct Bad = "bad" { 2: i32 x: i32, 1: i32 y: i32 } }
/// ```
#[macro_export]
macro_rules! sandesh {
    (@tt bool) => { $crate::wire::TType::Bool };
    (@tt byte) => { $crate::wire::TType::Byte };
    (@tt i16) => { $crate::wire::TType::I16 };
    (@tt i32) => { $crate::wire::TType::I32 };
    (@tt i64) => { $crate::wire::TType::I64 };
    (@tt u16) => { $crate::wire::TType::U16 };
    (@tt u32) => { $crate::wire::TType::U32 };
    (@tt u64) => { $crate::wire::TType::U64 };
    (@tt string) => { $crate::wire::TType::String };
    (@tt ipv4) => { $crate::wire::TType::Ipv4 };
    (@tt ipaddr) => { $crate::wire::TType::IpAddr };
    (@tt uuid_t) => { $crate::wire::TType::Uuid };
    (@tt sandesh_op) => { $crate::wire::TType::I32 };
    (@tt flow_op) => { $crate::wire::TType::I32 };
    (@tt list) => { $crate::wire::TType::List };
    (@tt $other:ident) => { $crate::wire::TType::Struct };
    (@elem) => { $crate::wire::TType::Stop };
    (@elem $e:ident) => { $crate::sandesh!(@tt $e) };

    (@fields
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $id:literal : $wt:ident $(< $et:ident >)? $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        $vis struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        const _: () = {
            $(
                assert!(
                    <$ty as $crate::wire::Value>::TTYPE as u8
                        == $crate::sandesh!(@tt $wt) as u8
                        && <$ty as $crate::wire::Value>::ELEM as u8
                            == $crate::sandesh!(@elem $($et)?) as u8,
                    concat!(
                        stringify!($name), "::", stringify!($field),
                        ": Rust type does not match the wire type"
                    ),
                );
            )*
            assert!(
                $crate::wire::ids_ascending(&[$($id),*]),
                concat!(stringify!($name), ": field ids must be strictly ascending"),
            );
        };

        impl $crate::wire::Fields for $name {
            fn encode_fields(&self, out: &mut $crate::__private::Vec<u8>) {
                $(
                    // Our extension fields go on the wire only when set, so
                    // an answer stays upstream's byte for byte without them.
                    if $id < $crate::wire::EXTENSION_FIELD_ID
                        || self.$field != <$ty as ::core::default::Default>::default()
                    {
                        $crate::wire::write_field_header(
                            out,
                            <$ty as $crate::wire::Value>::TTYPE,
                            $id,
                        );
                        $crate::wire::Value::encode(&self.$field, out);
                    }
                )*
                $crate::wire::write_stop(out);
            }

            fn decode_fields(
                r: &mut $crate::wire::Reader<'_>,
            ) -> ::core::result::Result<Self, $crate::DecodeError> {
                let mut this = <Self as ::core::default::Default>::default();
                while let ::core::option::Option::Some((ftype, fid)) = r.read_field_header()? {
                    match fid {
                        $(
                            $id if ftype == <$ty as $crate::wire::Value>::TTYPE as u8 => {
                                $crate::wire::decode_field(r, &mut this.$field)?
                            }
                        )*
                        _ => r.skip(ftype)?,
                    }
                }
                ::core::result::Result::Ok(this)
            }
        }
    };

    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident = $wire_name:literal { $($body:tt)* }
    ) => {
        $crate::sandesh!(@fields $(#[$meta])* $vis struct $name { $($body)* });

        impl $crate::Sandesh for $name {
            const NAME: &'static str = $wire_name;
        }
    };

    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident { $($body:tt)* }
    ) => {
        $crate::sandesh!(@fields $(#[$meta])* $vis struct $name { $($body)* });

        impl $crate::wire::Value for $name {
            const TTYPE: $crate::wire::TType = $crate::wire::TType::Struct;

            fn encode(&self, out: &mut $crate::__private::Vec<u8>) {
                $crate::wire::Fields::encode_fields(self, out)
            }

            fn decode(
                r: &mut $crate::wire::Reader<'_>,
            ) -> ::core::result::Result<Self, $crate::DecodeError> {
                r.nested(<Self as $crate::wire::Fields>::decode_fields)
            }
        }
    };
}
