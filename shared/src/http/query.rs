//! Query strings into typed structs: each route declares its parameters as a
//! `#[derive(Deserialize)] #[serde(deny_unknown_fields)]` struct and takes
//! [`TypedQuery<T>`]. Every refusal is a 400 naming the parameter at fault:
//! a repeated parameter, an unknown one (listing the known ones), a bad value.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::HashSet;
use std::fmt;

use super::error::ApiError;

/// A query string decoded into `T`; see the module documentation.
pub struct TypedQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for TypedQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid("query", format!("the query string cannot be read: {e}")))?;
        from_pairs(pairs).map(TypedQuery)
    }
}

/// Decodes percent-decoded `name=value` pairs into `T`. A repeated name is
/// refused rather than silently resolved, before anything else is looked at.
pub fn from_pairs<T: DeserializeOwned>(pairs: Vec<(String, String)>) -> Result<T, ApiError> {
    let mut seen = HashSet::with_capacity(pairs.len());
    if let Some((name, _)) = pairs.iter().find(|(name, _)| !seen.insert(name.as_str())) {
        return Err(ApiError::invalid(name.clone(), "query parameter given more than once"));
    }
    T::deserialize(Pairs(pairs)).map_err(|e| ApiError::invalid(e.field.unwrap_or_else(|| "query".into()), e.message))
}

/// An RFC 3339 time parameter, for `#[serde(default, deserialize_with = "query::rfc3339")]`.
pub fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&raw)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| de::Error::custom(format!("must be an RFC 3339 time such as 2026-12-01T22:00:00Z; got {raw:?}")))
}

/// Why a query string was refused: the parameter at fault and a message
/// naming it. Messages about a value are phrased as a predicate ("must be
/// ..."); the parameter's name is put in front of them.
#[derive(Debug)]
struct QueryError {
    field: Option<String>,
    message: String,
}

impl QueryError {
    /// The error of a parameter's value, naming the parameter if nothing inside did.
    fn of(self, name: &str) -> Self {
        match self.field {
            Some(_) => self,
            None => QueryError { field: Some(name.to_owned()), message: format!("{name} {}", self.message) },
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}

impl de::Error for QueryError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        QueryError { field: None, message: msg.to_string() }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        QueryError {
            field: Some(field.to_owned()),
            message: format!("unknown query parameter; known: {}", expected.join(", ")),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        QueryError { field: Some(field.to_owned()), message: format!("query parameter {field} is required") }
    }
}

/// The whole query string: a map from parameter names to values.
struct Pairs(Vec<(String, String)>);

impl<'de> Deserializer<'de> for Pairs {
    type Error = QueryError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_map(Entries { pairs: self.0.into_iter(), value: None })
    }

    /// An unknown parameter is refused before any value is read, and values
    /// are read in the order the struct declares its fields, so that the
    /// parameter named in an error does not depend on the query's order.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, QueryError> {
        let Pairs(mut pairs) = self;
        if let Some((name, _)) = pairs.iter().find(|(name, _)| !fields.contains(&name.as_str())) {
            return Err(de::Error::unknown_field(name, fields));
        }
        pairs.sort_by_key(|(name, _)| fields.iter().position(|f| f == name));
        Pairs(pairs).deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The pairs handed to a visitor one by one; every error about a value names its parameter.
struct Entries {
    pairs: std::vec::IntoIter<(String, String)>,
    value: Option<(String, String)>,
}

impl<'de> de::MapAccess<'de> for Entries {
    type Error = QueryError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, QueryError> {
        let Some((name, raw)) = self.pairs.next() else { return Ok(None) };
        let key = seed.deserialize(name.as_str().into_deserializer())?;
        self.value = Some((name, raw));
        Ok(Some(key))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, QueryError> {
        let (name, raw) =
            self.value.take().ok_or_else(|| de::Error::custom("a value was asked for before its name"))?;
        seed.deserialize(Value(raw)).map_err(|e| e.of(&name))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.pairs.len())
    }
}

/// One parameter's value, as text; numbers and booleans are parsed from it.
struct Value(String);

macro_rules! parse_value {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
            match self.0.parse::<$ty>() {
                Ok(v) => visitor.$visit(v),
                Err(_) => Err(de::Error::custom(format!(concat!("must be ", $what, "; got {:?}"), self.0))),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Value {
    type Error = QueryError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_string(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, QueryError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, QueryError> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    parse_value! {
        deserialize_bool visit_bool bool, "true or false";
        deserialize_u8 visit_u8 u8, "a whole number";
        deserialize_u16 visit_u16 u16, "a whole number";
        deserialize_u32 visit_u32 u32, "a whole number";
        deserialize_u64 visit_u64 u64, "a whole number";
        deserialize_i8 visit_i8 i8, "a whole number";
        deserialize_i16 visit_i16 i16, "a whole number";
        deserialize_i32 visit_i32 i32, "a whole number";
        deserialize_i64 visit_i64 i64, "a whole number";
        deserialize_f64 visit_f64 f64, "a number";
    }

    serde::forward_to_deserialize_any! {
        i128 u128 f32 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Page {
        service: Option<String>,
        #[serde(default, deserialize_with = "rfc3339")]
        from: Option<DateTime<Utc>>,
        limit: Option<usize>,
        cursor: Option<String>,
    }

    fn parse(query: &[(&str, &str)]) -> Result<Page, ApiError> {
        from_pairs(query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    fn refusal(query: &[(&str, &str)]) -> (String, String) {
        let e = parse(query).expect_err("refused");
        assert_eq!(e.code, "invalid_request");
        (e.field.unwrap_or_default(), e.message)
    }

    #[test]
    fn every_parameter_is_optional_and_typed() {
        assert_eq!(parse(&[]).expect("empty"), Page { service: None, from: None, limit: None, cursor: None });
        let page =
            parse(&[("limit", "10"), ("service", "payments"), ("from", "2026-12-01T22:00:00+01:00")]).expect("valid");
        assert_eq!(page.limit, Some(10));
        assert_eq!(page.service.as_deref(), Some("payments"));
        assert_eq!(page.from.map(|t| t.to_rfc3339()).as_deref(), Some("2026-12-01T21:00:00+00:00"));
    }

    #[test]
    fn a_repeated_parameter_is_refused_by_name() {
        let (field, message) = refusal(&[("limit", "1"), ("colour", "red"), ("limit", "2")]);
        assert_eq!((field.as_str(), message.as_str()), ("limit", "query parameter given more than once"));
    }

    #[test]
    fn an_unknown_parameter_is_refused_listing_the_known_ones() {
        let (field, message) = refusal(&[("limit", "many"), ("colour", "red")]);
        assert_eq!(field, "colour");
        assert_eq!(message, "unknown query parameter; known: service, from, limit, cursor");
    }

    #[test]
    fn a_bad_value_names_its_parameter() {
        let (field, message) = refusal(&[("limit", "many")]);
        assert_eq!((field.as_str(), message.as_str()), ("limit", "limit must be a whole number; got \"many\""));
        let (field, message) = refusal(&[("limit", "-1")]);
        assert_eq!((field.as_str(), message.as_str()), ("limit", "limit must be a whole number; got \"-1\""));
        let (field, message) = refusal(&[("from", "yesterday")]);
        assert_eq!(field, "from");
        assert_eq!(message, "from must be an RFC 3339 time such as 2026-12-01T22:00:00Z; got \"yesterday\"");
    }

    #[test]
    fn a_missing_required_parameter_is_named() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Lift {
            reason: String,
        }
        let e = from_pairs::<Lift>(vec![]).expect_err("refused");
        assert_eq!((e.field.as_deref(), e.message.as_str()), (Some("reason"), "query parameter reason is required"));
    }

    #[test]
    fn the_first_bad_value_in_declaration_order_is_named() {
        assert_eq!(refusal(&[("limit", "many"), ("from", "yesterday")]).0, "from");
    }
}
