//! Forgiving field decoders for what real exchanges send.
//!
//! Exchanges send numbers as strings (`"bidfloor": "0.5"`, `"secure": "1"`), strings as numbers
//! (`"ver": 1`), nulls, single values where arrays belong, and objects of the wrong type. A bidder that
//! refused all of that would refuse real traffic, so each field the bidder reads is decoded with one of
//! these: a value of the right meaning in the wrong type is converted, a value that cannot mean anything is
//! treated as absent, and a lone value where a list belongs is a list of one. Nothing here fails on a
//! type mismatch; only malformed JSON fails the whole request.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{
    self, Deserialize, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

/// Numbers the bidder reads: converted from any JSON number or numeric string that fits.
pub trait Number: Sized {
    fn from_f64(value: f64) -> Option<Self>;
    fn from_i64(value: i64) -> Option<Self>;
}

impl Number for f64 {
    fn from_f64(value: f64) -> Option<Self> {
        value.is_finite().then_some(value)
    }
    fn from_i64(value: i64) -> Option<Self> {
        Some(value as f64)
    }
}

impl Number for u32 {
    fn from_f64(value: f64) -> Option<Self> {
        let whole =
            value.is_finite() && value.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&value);
        whole.then_some(value as u32)
    }
    fn from_i64(value: i64) -> Option<Self> {
        u32::try_from(value).ok()
    }
}

/// The `visit_*` methods of a scalar visitor for JSON values that cannot mean what it reads: each
/// reads as absent (`None`), skipping over whatever it contains. `map` adds objects to them.
macro_rules! absent_otherwise {
    (map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        absent_otherwise!();
    };
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
}

struct NumberVisitor<T>(PhantomData<T>);

impl<'de, T: Number> Visitor<'de> for NumberVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(T::from_i64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).ok().and_then(T::from_i64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(T::from_f64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        Ok(match v.parse::<i64>() {
            Ok(n) => T::from_i64(n),
            Err(_) => v.parse::<f64>().ok().and_then(T::from_f64),
        })
    }
    absent_otherwise!(map);
}

/// A number, or a string holding one; anything else is absent.
pub fn number<'de, D: Deserializer<'de>, T: Number>(d: D) -> Result<Option<T>, D::Error> {
    d.deserialize_any(NumberVisitor(PhantomData))
}

struct StringVisitor;

impl<'de> Visitor<'de> for StringVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    absent_otherwise!(map);
}

/// A string, or a number written where a string belongs; anything else is absent.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(StringVisitor)
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    absent_otherwise!();
}

/// An object whose own fields are decoded leniently; a non-object is absent.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    d.deserialize_any(ObjectVisitor(PhantomData))
}

/// How one element of a list is read: [`Str`], [`Num`] or [`Obj`].
pub trait Element<'de> {
    type Out;
    fn read<D: Deserializer<'de>>(d: D) -> Result<Option<Self::Out>, D::Error>;
}

/// Elements read with [`string`].
pub struct Str;
/// Elements read with [`number`].
pub struct Num<T>(PhantomData<T>);
/// Elements read with [`object`].
pub struct Obj<T>(PhantomData<T>);

impl<'de> Element<'de> for Str {
    type Out = String;
    fn read<D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        string(d)
    }
}

impl<'de, T: Number> Element<'de> for Num<T> {
    type Out = T;
    fn read<D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
        number(d)
    }
}

impl<'de, T: Deserialize<'de>> Element<'de> for Obj<T> {
    type Out = T;
    fn read<D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
        object(d)
    }
}

/// One list element as read by `R`.
struct Item<'de, R: Element<'de>>(Option<R::Out>);

impl<'de, R: Element<'de>> Deserialize<'de> for Item<'de, R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        R::read(d).map(Item)
    }
}

struct ListVisitor<R>(PhantomData<R>);

impl<'de, R: Element<'de>> ListVisitor<R> {
    /// A lone value where the list belongs: a list of that one element, if it reads as one.
    fn one<D: Deserializer<'de>>(d: D) -> Result<Vec<R::Out>, D::Error> {
        Ok(R::read(d)?.into_iter().collect())
    }
}

impl<'de, R: Element<'de>> Visitor<'de> for ListVisitor<R> {
    type Value = Vec<R::Out>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Item::<R>(item)) = seq.next_element()? {
            out.extend(item);
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Self::one(MapAccessDeserializer::new(map))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Self::one(StrDeserializer::new(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Self::one(v.into_deserializer())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Self::one(v.into_deserializer())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Self::one(v.into_deserializer())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
}

/// A list whose elements are read by `R`; elements that do not read are dropped.
pub fn list<'de, D: Deserializer<'de>, R: Element<'de>>(d: D) -> Result<Vec<R::Out>, D::Error> {
    d.deserialize_any(ListVisitor::<R>(PhantomData))
}

/// A list of strings (numbers kept as text).
pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    list::<D, Str>(d)
}

/// A list of numbers (numeric strings converted).
pub fn numbers<'de, D: Deserializer<'de>, T: Number>(d: D) -> Result<Vec<T>, D::Error> {
    list::<D, Num<T>>(d)
}

/// A list of objects.
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    list::<D, Obj<T>>(d)
}
