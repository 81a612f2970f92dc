//! How a key of `precis.toml` is declared once: [`settings!`] turns each key's doc comment, type,
//! default and flag into its field of the configuration structs, its `Default`, and a [`Key`] in a
//! table from which the `precis serve` flags, their help and the start-up checks are made.
//!
//! It knows no key in particular (the declaration in `config` does) and it never reads a file or
//! the environment: it builds flags and reads them back as the TOML table they stand for.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command};
use serde::Serialize;

/// Declares the keys of `precis.toml`: the top-level struct with its keys, then each section as
/// `[name] pub struct Type { ... }`. Each key is
///
/// ```text
/// /// Doc comment: the field's doc, and the flag's help with the default appended.
/// name: Type = default, KIND [, shown "the default in words"] [, above 0];
/// ```
///
/// where KIND is `flag "VALUE_NAME"` (`--name VALUE`, `--section-name VALUE` in a section),
/// `secret` (no flag: the file or the environment only) or `rates "flag"` (a table of exchange
/// rates, one `--flag CODE=RATE` per entry, repeatable). `shown` describes a default worked out at
/// start (the key's own default being no value); `above 0` refuses, at start, a value that is not.
macro_rules! settings {
    (
        $(#[doc = $doc:literal])*
        pub struct $Config:ident {
            $(
                $(#[doc = $top_doc:literal])*
                $top:ident: $top_ty:ty = $top_default:expr, $top_kind:ident $($top_arg:literal)*
                    $(, shown $top_shown:literal)? $(, above $top_bound:literal)?;
            )*
        }
        $(
            $(#[doc = $section_doc:literal])*
            [$section:ident] pub struct $Section:ident {
                $(
                    $(#[doc = $key_doc:literal])*
                    $key:ident: $key_ty:ty = $key_default:expr, $key_kind:ident $($key_arg:literal)*
                        $(, shown $key_shown:literal)? $(, above $key_bound:literal)?;
                )*
            }
        )*
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $Config {
            $($(#[doc = $top_doc])* pub $top: $top_ty,)*
            $($(#[doc = $section_doc])* pub $section: $Section,)*
        }

        impl Default for $Config {
            fn default() -> Self {
                $Config {
                    $($top: $top_default,)*
                    $($section: $Section::default(),)*
                }
            }
        }

        $(
            $(#[doc = $section_doc])*
            #[derive(Debug, Clone, serde::Deserialize)]
            #[serde(deny_unknown_fields, default)]
            pub struct $Section {
                $($(#[doc = $key_doc])* pub $key: $key_ty,)*
            }

            impl Default for $Section {
                fn default() -> Self {
                    $Section {
                        $($key: $key_default,)*
                    }
                }
            }
        )*

        /// Every key, in the order of the declaration (which is the order of the flags and of
        /// reference's table in docs/reference.md).
        static KEYS: &[$crate::config::keys::Key<$Config>] = &[
            $(
                settings!(@key None, $top: $top_ty, [$($top_doc)*], $Config::default().$top,
                    $top_kind [$($top_arg)*],
                    settings!(@some $($top_shown)?),
                    settings!(@some $($crate::config::keys::Above {
                        bound: $top_bound as f64,
                        value: |c: &$Config| c.$top as f64,
                    })?)),
            )*
            $($(
                settings!(@key Some(stringify!($section)), $key: $key_ty, [$($key_doc)*],
                    $Section::default().$key,
                    $key_kind [$($key_arg)*],
                    settings!(@some $($key_shown)?),
                    settings!(@some $($crate::config::keys::Above {
                        bound: $key_bound as f64,
                        value: |c: &$Config| c.$section.$key as f64,
                    })?)),
            )*)*
        ];
    };

    (@key $section:expr, $name:ident: $ty:ty, [$($doc:literal)*], $default:expr,
        $kind:ident [$($arg:literal)*], $shown:expr, $above:expr) => {
        $crate::config::keys::Key {
            section: $section,
            name: stringify!($name),
            doc: &[$($doc),*],
            default: || toml::Value::try_from($default).ok(),
            shown: $shown,
            flag: settings!(@flag $ty, $kind $($arg)*),
            above: $above,
        }
    };

    (@flag $ty:ty, flag $value_name:literal) => {
        $crate::config::keys::Flag::Value {
            value_name: $value_name,
            parser: |arg| {
                arg.value_parser(clap::value_parser!(<$ty as $crate::config::keys::Setting>::Flag))
            },
            given: $crate::config::keys::given::<<$ty as $crate::config::keys::Setting>::Flag>,
        }
    };
    (@flag $ty:ty, secret) => {
        $crate::config::keys::Flag::Secret
    };
    (@flag $ty:ty, rates $long:literal) => {
        $crate::config::keys::Flag::Rates { long: $long }
    };

    (@some) => {
        None
    };
    (@some $value:expr) => {
        Some($value)
    };
}

pub(super) use settings;

/// One key of `precis.toml`, as declared; `C` is the configuration it is read from.
pub struct Key<C: 'static> {
    /// The `[section]` holding the key; `None` for a top-level key.
    pub section: Option<&'static str>,
    pub name: &'static str,
    /// The lines of its doc comment.
    pub doc: &'static [&'static str],
    /// Its default as TOML; `None` when the default is no value.
    pub default: fn() -> Option<toml::Value>,
    /// Its default in words, when that is worked out at start rather than a value.
    pub shown: Option<&'static str>,
    pub flag: Flag,
    /// A bound the value must be above.
    pub above: Option<Above<C>>,
}

/// A bound a key's value must be above, and how to read that value from the configuration `C`.
pub struct Above<C> {
    pub bound: f64,
    pub value: fn(&C) -> f64,
}

/// How a key is given on the command line.
pub enum Flag {
    /// Not at all: a secret belongs in the environment, not in a process listing.
    Secret,
    /// `--KEY VALUE` (`--SECTION-KEY VALUE` in a section), VALUE read as the key's type.
    Value {
        value_name: &'static str,
        /// Gives the flag its value parser.
        parser: fn(Arg) -> Arg,
        /// The value given, as TOML.
        given: fn(&ArgMatches, &str) -> Option<Result<toml::Value, String>>,
    },
    /// `--LONG CODE=RATE`, repeatable: entries of a table of exchange rates.
    Rates { long: &'static str },
}

/// What the flag of a key of this type reads: the type itself, or the value of an optional key.
pub trait Setting {
    type Flag;
}

impl<T> Setting for Option<T> {
    type Flag = T;
}

macro_rules! read_as_themselves {
    ($($ty:ty),*) => {
        $(impl Setting for $ty {
            type Flag = $ty;
        })*
    };
}

read_as_themselves!(usize, u64, u32, f64, PathBuf);

/// The value given for the flag `id`, as TOML (see [`Flag::Value`]).
pub fn given<T>(matches: &ArgMatches, id: &str) -> Option<Result<toml::Value, String>>
where
    T: Serialize + Clone + Send + Sync + 'static,
{
    let value = matches.get_one::<T>(id)?;
    Some(toml::Value::try_from(value).map_err(|e| e.to_string()))
}

impl<C> Key<C> {
    /// `listen`, `[events] queue`: the key as messages name it.
    pub fn title(&self) -> String {
        match self.section {
            Some(section) => format!("[{section}] {}", self.name),
            None => self.name.to_owned(),
        }
    }

    /// The long name of its flag (without the dashes); `None` for a secret.
    pub fn long(&self) -> Option<String> {
        match self.flag {
            Flag::Secret => None,
            Flag::Rates { long } => Some(long.to_owned()),
            Flag::Value { .. } => Some(
                match self.section {
                    Some(section) => format!("{section}-{}", self.name),
                    None => self.name.to_owned(),
                }
                .replace('_', "-"),
            ),
        }
    }

    /// Its default as the help shows it, if it has one to show.
    pub fn shown_default(&self) -> Option<String> {
        match self.shown {
            Some(words) => Some(words.to_owned()),
            None => (self.default)().and_then(|value| match value {
                toml::Value::String(text) => Some(text),
                toml::Value::Float(number) => Some(number.to_string()),
                toml::Value::Table(_) | toml::Value::Array(_) => None,
                other => Some(other.to_string()),
            }),
        }
    }

    /// The help of its flag: the doc comment, then the default.
    fn help(&self) -> String {
        let doc = self.doc.iter().map(|line| line.trim()).collect::<Vec<_>>();
        let doc = doc.join(" ");
        let doc = doc.trim_end_matches('.');
        match self.shown_default() {
            Some(default) => format!("{doc} [default: {default}]"),
            None => doc.to_owned(),
        }
    }

    /// Its flag; `None` for a secret.
    fn arg(&self) -> Option<Arg> {
        let long = self.long()?;
        let arg = Arg::new(long.clone()).long(long).help(self.help());
        match self.flag {
            Flag::Secret => None,
            Flag::Value {
                value_name, parser, ..
            } => Some(parser(arg.value_name(value_name).action(ArgAction::Set))),
            Flag::Rates { .. } => Some(
                arg.value_name("CODE=RATE")
                    .action(ArgAction::Append)
                    .value_parser(rate),
            ),
        }
    }

    /// The value given on the command line, as TOML; `None` when the flag was not given.
    fn given(&self, matches: &ArgMatches) -> Option<Result<toml::Value, String>> {
        let long = self.long()?;
        match self.flag {
            Flag::Secret => None,
            Flag::Value { given, .. } => given(matches, &long),
            Flag::Rates { .. } => {
                let rates = matches.get_many::<(String, f64)>(&long)?;
                let rates = rates.map(|(code, rate)| (code.clone(), toml::Value::Float(*rate)));
                Some(Ok(toml::Value::Table(rates.collect())))
            }
        }
    }

    /// Why `config` cannot be served with this key's value, if it cannot.
    pub fn refuses(&self, config: &C) -> Option<String> {
        let Above { bound, value } = self.above.as_ref()?;
        let value = value(config);
        (!(value.is_finite() && value > *bound))
            .then(|| format!("{} must be above {bound}, not {value}", self.title()))
    }
}

/// `command` with the flag of every key but the secrets, in the order of `keys`.
pub fn flags<C>(keys: &[Key<C>], command: Command) -> Command {
    keys.iter().filter_map(Key::arg).fold(command, Command::arg)
}

/// The flags given in `matches`, as the table of `precis.toml` they replace keys of. A value
/// that TOML cannot hold (an integer past `i64::MAX`) is an error.
pub fn given_table<C>(keys: &[Key<C>], matches: &ArgMatches) -> Result<toml::Table, String> {
    let mut table = toml::Table::new();
    let mut sections = BTreeMap::<&str, toml::Table>::new();
    for key in keys {
        let Some(value) = key.given(matches) else {
            continue;
        };
        let into = match key.section {
            Some(section) => sections.entry(section).or_default(),
            None => &mut table,
        };
        into.insert(key.name.to_owned(), value?);
    }
    let sections = sections.into_iter();
    table.extend(sections.map(|(name, keys)| (name.to_owned(), toml::Value::Table(keys))));
    Ok(table)
}

/// `CODE=RATE`.
fn rate(text: &str) -> Result<(String, f64), String> {
    let (code, rate) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not CODE=RATE"))?;
    let rate = rate
        .trim()
        .parse()
        .map_err(|_| format!("`{rate}` is not a number"))?;
    Ok((code.trim().to_owned(), rate))
}
