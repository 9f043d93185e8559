//! Small helpers shared by the query modules.

use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

/// Microseconds since the Unix epoch, the storage form of every time.
pub(crate) fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn from_micros(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn now() -> i64 {
    micros(Timestamp::now())
}

/// Reads a boolean column: PostgreSQL has `BOOLEAN`, SQLite stores 0/1.
pub(crate) fn get_bool(row: &AnyRow, col: &str) -> Result<bool, sqlx::Error> {
    match row.try_get::<bool, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(col)? != 0),
    }
}

pub(crate) fn get_ts(row: &AnyRow, col: &str) -> Result<Timestamp, sqlx::Error> {
    Ok(from_micros(row.try_get::<i64, _>(col)?))
}

pub(crate) fn get_opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_micros))
}

/// Arguments of a generated statement with many parameters, and their placeholders: anonymous
/// `?` on SQLite, `$N` on PostgreSQL. (sqlx-sqlite resolves every `$N` by name, a linear search
/// per parameter, so a 7,500-parameter insert spent most of its time there.) A statement built
/// with `Params` must take all its placeholders from it.
pub(crate) struct Params {
    backend: crate::Backend,
    pub(crate) args: sqlx::any::AnyArguments,
    n: usize,
}

impl Params {
    pub(crate) fn new(backend: crate::Backend) -> Params {
        Params {
            backend,
            args: Default::default(),
            n: 0,
        }
    }

    /// Binds `v` and writes its placeholder into `sql`.
    pub(crate) fn bind<'t, T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>>(
        &mut self,
        sql: &mut String,
        v: T,
    ) -> Result<(), sqlx::Error> {
        use sqlx::Arguments;
        self.n += 1;
        match self.backend {
            crate::Backend::Sqlite => sql.push('?'),
            crate::Backend::Postgres => {
                sql.push('$');
                sql.push_str(&self.n.to_string());
            }
        }
        self.args.add(v).map_err(sqlx::Error::Encode)
    }

    /// Binds each value, writing `p1, p2, …` into `sql`.
    pub(crate) fn bind_list<'t, T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>>(
        &mut self,
        sql: &mut String,
        values: impl IntoIterator<Item = T>,
    ) -> Result<(), sqlx::Error> {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            self.bind(sql, v)?;
        }
        Ok(())
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_pattern(q: &str) -> String {
    let mut s = String::with_capacity(q.len() + 2);
    s.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

/// Builds `SELECT … WHERE …` statements from optional conditions, on [`Params`].
pub(crate) struct Filter {
    sql: String,
    p: Params,
}

impl Filter {
    /// `base` ends in `… WHERE col =`; its value is `first`.
    pub(crate) fn new<'t, T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>>(
        backend: crate::Backend,
        base: &str,
        first: T,
    ) -> Result<Filter, sqlx::Error> {
        let mut f = Filter {
            sql: format!("{base} "),
            p: Params::new(backend),
        };
        f.p.bind(&mut f.sql, first)?;
        Ok(f)
    }

    /// Appends `clause`, whose one `$?` stands for the placeholder of `v`.
    pub(crate) fn and<'t, T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>>(
        &mut self,
        clause: &str,
        v: T,
    ) -> Result<(), sqlx::Error> {
        let (before, after) = clause.split_once("$?").expect("a filter clause has one $?");
        self.sql.push_str(before);
        self.p.bind(&mut self.sql, v)?;
        self.sql.push_str(after);
        Ok(())
    }

    /// Appends `AND col IN (…)` for a non-empty list.
    pub(crate) fn and_in<'t, T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>>(
        &mut self,
        col: &str,
        values: impl ExactSizeIterator<Item = T>,
    ) -> Result<(), sqlx::Error> {
        if values.len() == 0 {
            return Ok(());
        }
        self.sql.push_str(&format!(" AND {col} IN ("));
        self.p.bind_list(&mut self.sql, values)?;
        self.sql.push(')');
        Ok(())
    }

    /// Appends plain SQL (ordering, limits).
    pub(crate) fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    pub(crate) async fn fetch_all<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
        self,
        ex: E,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        sqlx::query_with(sqlx::AssertSqlSafe(self.sql), self.p.args)
            .fetch_all(ex)
            .await
    }
}

/// `NotFound` when a statement that targets one record touched none.
pub(crate) fn found(done: sqlx::any::AnyQueryResult) -> crate::Result<()> {
    if done.rows_affected() == 0 {
        Err(crate::StoreError::NotFound)
    } else {
        Ok(())
    }
}
