//! How the store's own types go into SQL and come back: every typed id and status is
//! bound as text and read back through the one pair of conversions written here, so
//! that no query spells a status as a literal and no caller handles a bare string.

/// Binds a type with `as_str` as text.
macro_rules! bound_as_text {
    ($t:ty) => {
        impl sqlx::Type<sqlx::Any> for $t {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <str as sqlx::Type<sqlx::Any>>::type_info()
            }
        }

        impl sqlx::Encode<'_, sqlx::Any> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Any>>::encode(self.as_str(), buf)
            }
        }
    };
}
pub(crate) use bound_as_text;

/// Binds a newtype over `String` (with `as_str` and `From<String>`) as text, and
/// reads it back.
macro_rules! text_newtype {
    ($t:ty) => {
        $crate::sql::bound_as_text!($t);

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $t {
            fn decode(
                value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(Self::from(<String as sqlx::Decode<sqlx::Any>>::decode(
                    value,
                )?))
            }
        }
    };
}
pub(crate) use text_newtype;

/// Binds an enum with `as_str` and `parse` (its stored names) as text, and reads it
/// back; a name the enum does not know is an error, not a default.
macro_rules! text_enum {
    ($t:ty) => {
        $crate::sql::bound_as_text!($t);

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $t {
            fn decode(
                value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Any>>::decode(value)?;
                <$t>::parse(text)
                    .ok_or_else(|| format!("unknown {} {text:?}", stringify!($t)).into())
            }
        }
    };
}
pub(crate) use text_enum;

/// The columns `$first, $rest…` of the table aliased (or named) `$t`, each selected
/// as `$t_column`, so that one list serves queries of the table alone and joins of
/// it with others; a macro so that queries stay `&'static str`.
macro_rules! columns_as {
    ($t:literal; $first:literal $(, $rest:literal)* $(,)?) => {
        concat!(
            $t, ".", $first, " AS ", $t, "_", $first
            $(, ", ", $t, ".", $rest, " AS ", $t, "_", $rest)*
        )
    };
}
pub(crate) use columns_as;
