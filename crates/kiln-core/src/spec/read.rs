//! Reading a spec's text: the serde shapes that accept what people write
//! (numbers for text, a command as a string or a list), and errors turned
//! into field paths.

use crate::error::Error;
use crate::model::{Command, LayerDep};
use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A scalar taken as text. YAML reads `frames: 10` or `- 5` as numbers where
/// the user meant text; `LOOSE` also takes floats and booleans (env values).
struct Scalar<const LOOSE: bool>(String);

impl<'de, const LOOSE: bool> Deserialize<'de> for Scalar<LOOSE> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const L: bool>;
        impl<const L: bool> Visitor<'_> for V<L> {
            type Value = Scalar<L>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(if L {
                    "a string or a number"
                } else {
                    "a string or an integer"
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                match L {
                    true => Ok(Scalar(v.to_string())),
                    false => Err(E::invalid_type(de::Unexpected::Float(v), &self)),
                }
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                match L {
                    true => Ok(Scalar(v.to_string())),
                    false => Err(E::invalid_type(de::Unexpected::Bool(v), &self)),
                }
            }
        }
        d.deserialize_any(V::<LOOSE>)
    }
}

/// Whole numbers, kept wide so range checks, not the reader, report values
/// out of range; and with a message that does not say `i64`.
pub(super) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a whole number")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
        }
    }
    d.deserialize_any(V)
}

pub(super) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Scalar::<false>::deserialize(d).map(|s| s.0)
}

pub(super) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Scalar<false>>::deserialize(d).map(|o| o.map(|s| s.0))
}

/// Optional text that may also be written as a number (`cores: 0.5`).
pub(super) fn opt_loose_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Scalar<true>>::deserialize(d).map(|o| o.map(|s| s.0))
}

pub(super) fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct I(#[serde(deserialize_with = "int")] i64);
    Option::<I>::deserialize(d).map(|o| o.map(|i| i.0))
}

pub(super) fn text_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<Scalar<false>>::deserialize(d).map(|v| v.into_iter().map(|s| s.0).collect())
}

pub(super) fn env_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    BTreeMap::<String, Scalar<true>>::deserialize(d)
        .map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect())
}

pub(super) fn command<'de, D: Deserializer<'de>>(d: D) -> Result<Command, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Command;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a command: a string for the shell, or a list of arguments")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Command, E> {
            Ok(Command::Shell(v.to_owned()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
            let mut args = Vec::new();
            while let Some(Scalar::<true>(arg)) = seq.next_element()? {
                args.push(arg);
            }
            Ok(Command::Argv(args))
        }
    }
    d.deserialize_any(V)
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map like {layer: render, per_frame: true}"
)]
struct DepMap {
    layer: String,
    #[serde(default)]
    per_frame: bool,
}

/// A layer dependency: a bare layer name, or a map with `per_frame`.
struct Dep(LayerDep);

impl<'de> Deserialize<'de> for Dep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dep;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a layer name, or a map like {layer: render, per_frame: true}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dep, E> {
                let layer = v.to_owned();
                Ok(Dep(LayerDep {
                    layer,
                    per_frame: false,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Dep, A::Error> {
                let m = DepMap::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Dep(LayerDep {
                    layer: m.layer,
                    per_frame: m.per_frame,
                }))
            }
        }
        d.deserialize_any(V)
    }
}

pub(super) fn layer_deps<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LayerDep>, D::Error> {
    Vec::<Dep>::deserialize(d).map(|v| v.into_iter().map(|d| d.0).collect())
}

/// Turns a reader's error into a spec error naming the field; `syntax` errors
/// (and errors about the document as a whole) are charged to `spec`.
pub(super) fn read_error(path: &serde_path_to_error::Path, message: String, syntax: bool) -> Error {
    let path = path.to_string();
    // The YAML reader puts its own path, sometimes the parent's, in front.
    let is_ancestor = |head: &str| {
        path.strip_prefix(head)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with(['.', '[']))
    };
    let message = match message.split_once(": ") {
        Some((head, rest)) if !syntax && head != "." && is_ancestor(head) => rest.to_owned(),
        _ => message,
    };
    // Serde reports a missing field on the map that lacks it; name the field.
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        let field = match path.as_str() {
            "." => name.to_owned(),
            _ => format!("{path}.{name}"),
        };
        return Error::spec(field, message);
    }
    // Serde will read a struct from a list, by position; at the top that
    // only ever means the user wrote the wrong kind of document.
    if syntax || path == "." || path.starts_with('[') {
        let message = match path.as_str() {
            _ if syntax || path == "." => message,
            _ => format!("expected a job spec: a map with at least `name` and `layers`, not a list ({message})"),
        };
        return Error::spec("spec", message);
    }
    Error::spec(path, message)
}

/// Walks a value without keeping it, charging one to `left` per value and
/// one per byte of text, and fails once it is spent.
struct Weigh<'a>(&'a std::cell::Cell<u64>);

impl Weigh<'_> {
    fn charge<E: de::Error>(&self, n: usize) -> Result<(), E> {
        match self.0.get().checked_sub(n as u64 + 1) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => {
                self.0.set(0);
                Err(E::custom("too much to read"))
            }
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for Weigh<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Weigh<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.charge(v.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.charge(0)?;
        while seq.next_element_seed(Weigh(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.charge(0)?;
        while map.next_key_seed(Weigh(self.0))?.is_some() {
            map.next_value_seed(Weigh(self.0))?;
        }
        Ok(())
    }
    // A tagged value (`!tag x`): the tag, then what it tags.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use de::VariantAccess;
        let ((), v) = data.variant_seed(Weigh(self.0))?;
        v.newtype_variant_seed(Weigh(self.0))
    }
}

/// Reads a whole YAML document, every alias followed, without keeping any
/// of it. `Ok(false)` when it holds more than `budget` (one per value, one
/// per byte of text): aliases that copy what they name can make a few KB
/// of text into gigabytes of values, and every later read would follow
/// them. Syntax errors come out as the YAML reader's.
pub(super) fn yaml_within(text: &str, budget: u64) -> Result<bool, serde_norway::Error> {
    let left = std::cell::Cell::new(budget);
    match de::DeserializeSeed::deserialize(Weigh(&left), serde_norway::Deserializer::from_str(text))
    {
        Ok(()) => Ok(true),
        Err(_) if left.get() == 0 => Ok(false),
        Err(e) => Err(e),
    }
}
