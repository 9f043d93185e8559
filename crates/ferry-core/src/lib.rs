//! Ferry's domain: contacts and their seed rules, matching, messages, runs and schedules.
//!
//! Everything here is pure: no I/O, no database, no network. The store, the web layer and the
//! connectors call these functions so that a rule lives in exactly one place.

#![warn(missing_docs)]

pub mod audit;
pub mod bulk;
pub mod contact;
pub mod email;
pub mod errors;
pub mod export;
pub mod mapping;
pub mod matching;
pub mod message;
pub mod outgoing;
pub mod phone;
pub mod run;
pub mod schedule;
pub mod signin;
pub mod tenancy;

/// Defines a closed set of snake_case string values with parsing, display and serde.
#[macro_export]
macro_rules! string_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The wire and storage spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($text => Ok($name::$variant),)+ _ => Err($crate::UnknownValue {
                    kind: stringify!($name),
                    value: s.to_string(),
                    allowed: &[$($text),+],
                }) }
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result { f.write_str(self.as_str()) }
        }
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.as_str()) }
        }
        impl ::schemars::JsonSchema for $name {
            fn schema_name() -> ::std::borrow::Cow<'static, str> { stringify!($name).into() }
            fn json_schema(_: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                ::schemars::json_schema!({ "type": "string", "enum": [$($text),+] })
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// A string that is not one of an enum's allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}; expected one of: {}", allowed.join(", "))]
pub struct UnknownValue {
    /// The enum's name, for the message.
    pub kind: &'static str,
    /// The value as given.
    pub value: String,
    /// The values the enum accepts.
    pub allowed: &'static [&'static str],
}
