//! QIDO-RS: query parameters (PS3.18 8.3.4) parsed against the attributes the index can match
//! (Azure's searchable set), and compiled into SQL over the study, series and instance tables.

use chrono::NaiveDate;
use tokio_postgres::types::ToSql;

use crate::extended::ExtendedTag;
use crate::{Index, Result, dicom_date, name_words};

mod attributes;

use attributes::{Kind, SEARCHABLE, Searchable};
pub use attributes::{dictionary_vr, is_standard_searchable, keyword_of, tag_of};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Study,
    Series,
    Instance,
}

/// A filter on an extended query tag.
#[derive(Debug, Clone)]
struct ExtendedFilter {
    tag: String,
    kind: Kind,
    level: Level,
}

/// What `includefield` asks for beyond the default attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum IncludeField {
    #[default]
    Default,
    All,
    /// Tags as 8 upper-case hex digits.
    Tags(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct QidoQuery {
    pub level: Level,
    filters: Vec<(&'static Searchable, String)>,
    extended: Vec<(ExtendedFilter, String)>,
    pub fuzzy: bool,
    pub limit: i64,
    pub offset: i64,
    pub include: IncludeField,
    /// Parameters that were understood but cannot be matched here, one sentence each, for the
    /// Warning header; they were ignored.
    pub warnings: Vec<String>,
    /// Extended query tags matched on although their reindex met errors (some instances are
    /// not indexed on them): Azure's `erroneous-dicom-attributes` header.
    pub erroneous: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QidoError {
    #[error(
        "the query parameter '{0}' is not a DICOM attribute keyword or tag, nor a QIDO-RS parameter"
    )]
    UnknownParameter(String),
    #[error(
        "the query parameter '{0}' is given more than once (by keyword or by tag); give each once"
    )]
    DuplicateParameter(String),
    #[error("the value '{value}' of {keyword} is not valid: {reason}")]
    InvalidValue {
        keyword: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("the attribute {name} cannot be matched: {reason}")]
    NotQueryable { name: String, reason: String },
    #[error("{0}")]
    InvalidControl(String),
    #[error(
        "the value of {0} contains a NUL character (%00) before its end; only trailing NUL padding is allowed, and it is ignored"
    )]
    Nul(String),
}

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 200;

impl QidoQuery {
    pub fn parse(level: Level, params: &[(String, String)]) -> Result<Self, QidoError> {
        Self::parse_with(level, params, &[])
    }

    /// Parses with the service's extended query tags (only `Ready` ones with query enabled
    /// are matched; others are ignored with a warning).
    pub fn parse_with(
        level: Level,
        params: &[(String, String)],
        extended: &[ExtendedTag],
    ) -> Result<Self, QidoError> {
        let mut q = QidoQuery {
            level,
            filters: Vec::new(),
            extended: Vec::new(),
            fuzzy: false,
            limit: DEFAULT_LIMIT,
            offset: 0,
            include: IncludeField::Default,
            warnings: Vec::new(),
            erroneous: Vec::new(),
        };
        // Azure refuses a parameter given twice (DuplicateAttribute): two values of one
        // attribute, or two limits, would otherwise be ANDed or the last taken, unsaid.
        let mut seen: Vec<String> = Vec::with_capacity(params.len());
        for (name, value) in params {
            let lower = name.to_ascii_lowercase();
            let key = match lower.as_str() {
                "includefield" => None,
                "limit" | "offset" | "fuzzymatching" => Some(lower.clone()),
                _ => Some(tag_of(name).unwrap_or_else(|| name.clone())),
            };
            if let Some(key) = key {
                if seen.contains(&key) {
                    return Err(QidoError::DuplicateParameter(name.clone()));
                }
                seen.push(key);
            }
            // ASP.NET, which Azure's binding is, matches parameter names without regard to
            // case; DICOM keywords are left exact, as PS3.18 spells them.
            match lower.as_str() {
                "limit" => {
                    q.limit = value
                        .parse::<i64>()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            QidoError::InvalidControl(format!(
                                "limit must be an integer from 1 to {MAX_LIMIT}, not '{value}'"
                            ))
                        })?;
                }
                "offset" => {
                    q.offset = value
                        .parse::<i64>()
                        .ok()
                        .filter(|o| *o >= 0)
                        .ok_or_else(|| {
                            QidoError::InvalidControl(format!(
                                "offset must be a non-negative integer, not '{value}'"
                            ))
                        })?;
                }
                "fuzzymatching" => {
                    q.fuzzy = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(QidoError::InvalidControl(format!(
                                "fuzzymatching must be true or false, not '{value}'"
                            )));
                        }
                    }
                }
                "includefield" => {
                    for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                        if field.eq_ignore_ascii_case("all") {
                            q.include = IncludeField::All;
                            continue;
                        }
                        let tag = tag_of(field)
                            .ok_or_else(|| QidoError::UnknownParameter(field.to_owned()))?;
                        match &mut q.include {
                            IncludeField::All => {}
                            IncludeField::Tags(t) => t.push(tag),
                            d @ IncludeField::Default => *d = IncludeField::Tags(vec![tag]),
                        }
                    }
                }
                _ => q.filter(name, unpad(name, value)?, extended)?,
            }
        }
        Ok(q)
    }

    fn filter(
        &mut self,
        name: &str,
        value: &str,
        extended: &[ExtendedTag],
    ) -> Result<(), QidoError> {
        let found = SEARCHABLE
            .iter()
            .find(|s| s.keyword == name || s.tag.eq_ignore_ascii_case(name));
        let tag = tag_of(name);
        if found.is_none()
            && let Some(ext) = tag
                .as_deref()
                .and_then(|t| extended.iter().find(|e| e.tag == t))
        {
            return self.extended_filter(name, value, ext);
        }
        let Some(attr) = found else {
            // The contract (and PS3.18's leniency): an attribute that cannot be matched
            // is ignored with a Warning rather than refused. Extended tags that exist but are
            // not ready are refused in `extended_filter`: the caller asked for them by name.
            if name.contains('.') || tag_of(name).is_some() {
                self.warnings.push(format!(
                    "The attribute {name} is not supported for matching; it was ignored."
                ));
                return Ok(());
            }
            return Err(QidoError::UnknownParameter(name.to_owned()));
        };
        if attr.level > self.level {
            self.warnings.push(format!(
                "{} is a {:?}-level attribute and cannot be matched in a {:?}-level query; it was ignored.",
                attr.keyword, attr.level, self.level
            ));
            return Ok(());
        }
        // An empty value is universal matching: it asks for the attribute, matches everything.
        if value.is_empty() {
            return Ok(());
        }
        let invalid = |reason| QidoError::InvalidValue {
            keyword: attr.keyword,
            value: value.to_owned(),
            reason,
        };
        match attr.kind {
            Kind::Date => {
                date_range(value).ok_or_else(|| {
                    invalid("a date is YYYYMMDD, a range is YYYYMMDD-YYYYMMDD with either end open")
                })?;
            }
            Kind::Integer => {
                value
                    .parse::<i32>()
                    .map_err(|_| invalid("an integer is expected"))?;
            }
            Kind::Uid if !uids(value).all(is_uid) => {
                return Err(invalid(
                    "UIDs are digits and dots, at most 64 characters, separated by commas",
                ));
            }
            _ => {}
        }
        self.filters.push((attr, value.to_owned()));
        Ok(())
    }

    fn extended_filter(
        &mut self,
        name: &str,
        value: &str,
        ext: &ExtendedTag,
    ) -> Result<(), QidoError> {
        let level = match ext.level.as_str() {
            "Study" => Level::Study,
            "Series" => Level::Series,
            _ => Level::Instance,
        };
        let not_queryable = |reason: String| QidoError::NotQueryable {
            name: name.to_owned(),
            reason,
        };
        if ext.status != "Ready" {
            return Err(not_queryable(format!(
                "the extended query tag {} is {}: its reindex operation has not completed yet",
                ext.tag, ext.status
            )));
        }
        if !ext.query_enabled {
            return Err(not_queryable(format!(
                "querying the extended query tag {tag} is disabled (QueryStatus Disabled), since its reindex could not index {n} instance(s) (GET extendedquerytags/{tag}/errors); PATCH its queryStatus to Enabled to match on it anyway",
                tag = ext.tag,
                n = ext.errors
            )));
        }
        let keyword = keyword_of(&ext.tag);
        if ext.errors > 0 && !self.erroneous.contains(&keyword) {
            self.erroneous.push(keyword);
        }
        if level > self.level {
            self.warnings.push(format!(
                "{name} is a {level:?}-level extended query tag and cannot be matched in a {:?}-level query; it was ignored.",
                self.level
            ));
            return Ok(());
        }
        if value.is_empty() {
            return Ok(());
        }
        let kind = match ext.vr.as_str() {
            "DA" => Kind::Date,
            "PN" => Kind::Name,
            "DS" | "FD" | "FL" | "IS" | "SL" | "SS" | "UL" | "US" => Kind::Number,
            _ => Kind::Text,
        };
        let bad = |reason| QidoError::InvalidValue {
            keyword: "extended query tag",
            value: value.to_owned(),
            reason,
        };
        match kind {
            Kind::Date if date_range(value).is_none() => {
                return Err(bad("a date is YYYYMMDD, a range is YYYYMMDD-YYYYMMDD"));
            }
            Kind::Number if value.parse::<f64>().is_err() => {
                return Err(bad("a number is expected"));
            }
            _ => {}
        }
        self.extended.push((
            ExtendedFilter {
                tag: ext.tag.clone(),
                kind,
                level,
            },
            value.to_owned(),
        ));
        Ok(())
    }

    /// The tags of attributes this query matches on, which the answer must include.
    pub fn match_tags(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.filters.iter().map(|(a, _)| a.tag)
    }
}

/// Whether a text is a UID by PS3.5 9.1's character set and length (the leading-zero rule is
/// not enforced: stored UIDs that break it must still be found).
pub fn is_uid(u: &str) -> bool {
    !u.is_empty() && u.len() <= 64 && u.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A match value without its DICOM padding. Stored values lose trailing spaces and NULs
/// (PS3.5 6.2) when indexed, so Azure's promise holds: a value stored with NUL padding is found
/// with or without it. A NUL elsewhere cannot be in an indexed value, and PostgreSQL text
/// cannot hold one: refused.
fn unpad<'v>(name: &str, value: &'v str) -> Result<&'v str, QidoError> {
    let v = value.trim_end_matches([' ', '\0']);
    if v.contains('\0') {
        return Err(QidoError::Nul(name.to_owned()));
    }
    Ok(v)
}

fn uids(value: &str) -> impl Iterator<Item = &str> {
    value
        .split([',', '\\'])
        .map(str::trim)
        .filter(|u| !u.is_empty())
}

fn date_range(value: &str) -> Option<(Option<NaiveDate>, Option<NaiveDate>)> {
    match value.split_once('-') {
        None => dicom_date(value).map(|d| (Some(d), Some(d))),
        Some((a, b)) => {
            let from = if a.is_empty() {
                None
            } else {
                Some(dicom_date(a)?)
            };
            let to = if b.is_empty() {
                None
            } else {
                Some(dicom_date(b)?)
            };
            (from.is_some() || to.is_some()).then_some((from, to))
        }
    }
}

/// A LIKE pattern from DICOM wildcards, or None when there are none.
fn like_pattern(value: &str) -> Option<String> {
    value.contains(['*', '?']).then(|| to_like(value))
}

/// `value` as a LIKE pattern: its wildcards as SQL's, LIKE's own characters escaped (so a
/// value without wildcards matches only itself).
fn to_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// What a path names above the query level: `/studies/{study}/series`, ...
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub partition: &'a str,
    pub study: Option<&'a str>,
    pub series: Option<&'a str>,
}

/// One match: its UIDs, the stored JSON member texts to answer with, and what is computed.
#[derive(Debug, Clone)]
pub struct QidoMatch {
    pub study_uid: String,
    pub series_uid: Option<String>,
    pub sop_uid: Option<String>,
    /// DICOM JSON objects whose members make up the answer (study, series or instance level).
    pub objects: Vec<String>,
    /// The study's computed attributes (ModalitiesInStudy, NumberOfStudyRelatedSeries and
    /// -Instances), when the answer carries them.
    pub study: Option<StudyCounts>,
    /// NumberOfSeriesRelatedInstances, when the answer carries it.
    pub series_instances: Option<i64>,
    /// The instance's whole metadata, when `includefield` asks for more than the index keeps.
    pub metadata: Option<String>,
    /// The stored objects of the levels above that `objects` leaves out because the path names
    /// them: `includefield` may still ask for their attributes (PS3.18 10.6.3.3.2-3).
    pub parents: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StudyCounts {
    pub modalities: Vec<String>,
    pub series: i64,
    pub instances: i64,
}

/// Tags of the computed attributes a level above the answer's may require.
pub const MODALITIES_IN_STUDY: &str = "00080061";
pub const STUDY_RELATED_SERIES: &str = "00201206";
pub const STUDY_RELATED_INSTANCES: &str = "00201208";
pub const SERIES_RELATED_INSTANCES: &str = "00201209";

impl QidoQuery {
    /// Whether `includefield` names this tag (or is `all`).
    pub fn includes(&self, tag: &str) -> bool {
        match &self.include {
            IncludeField::All => true,
            IncludeField::Tags(t) => t.iter().any(|t| t == tag),
            IncludeField::Default => false,
        }
    }

    /// PS3.18 10.6.3.3.2-3: an answer above which no study is named (All Series, All
    /// Instances) carries the study's attributes, computed ones included; they come too when
    /// `includefield` or a match key names them.
    fn wants_study_counts(&self, scope: &Scope<'_>) -> bool {
        self.level == Level::Study
            || scope.study.is_none()
            || [
                MODALITIES_IN_STUDY,
                STUDY_RELATED_SERIES,
                STUDY_RELATED_INSTANCES,
            ]
            .iter()
            .any(|t| self.includes(t) || self.match_tags().any(|m| m == *t))
    }

    /// Likewise for the series above instances: Study's Instances and All Instances carry it.
    fn wants_series_count(&self, scope: &Scope<'_>) -> bool {
        self.level == Level::Series
            || (self.level == Level::Instance
                && (scope.series.is_none() || self.includes(SERIES_RELATED_INSTANCES)))
    }
}

/// SQL for the study's computed attributes of the row aliased `t`, or NULLs.
fn study_counts_sql(wanted: bool) -> &'static str {
    if wanted {
        "ARRAY(SELECT DISTINCT m.modality FROM dicom_series m
                WHERE m.partition = t.partition AND m.study_uid = t.study_uid
                  AND m.modality IS NOT NULL ORDER BY 1),
         (SELECT count(*) FROM dicom_series m
           WHERE m.partition = t.partition AND m.study_uid = t.study_uid),
         (SELECT count(*) FROM dicom_instances m
           WHERE m.partition = t.partition AND m.study_uid = t.study_uid)"
    } else {
        "NULL::text[], NULL::bigint, NULL::bigint"
    }
}

fn study_counts(r: &tokio_postgres::Row, at: usize) -> Option<StudyCounts> {
    let modalities: Option<Vec<String>> = r.get(at);
    Some(StudyCounts {
        modalities: modalities?,
        series: r.get(at + 1),
        instances: r.get(at + 2),
    })
}

struct Sql {
    text: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    fn bind(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }
}

impl Index {
    pub async fn qido(&self, scope: Scope<'_>, q: &QidoQuery) -> Result<Vec<QidoMatch>> {
        let mut sql = Sql {
            text: String::new(),
            params: Vec::new(),
        };
        let p = sql.bind(scope.partition.to_owned());
        let mut conds = Vec::new();
        if let Some(study) = scope.study {
            let v = sql.bind(study.to_owned());
            conds.push(format!("t.study_uid = {v}"));
        }
        if let Some(series) = scope.series {
            let v = sql.bind(series.to_owned());
            conds.push(format!("s.series_uid = {v}"));
        }
        for (attr, value) in &q.filters {
            conds.push(condition(&mut sql, attr.kind, attr.column, value, q.fuzzy));
        }
        for (ext, value) in &q.extended {
            let tag = sql.bind(ext.tag.clone());
            let col = match ext.kind {
                Kind::Date => "v.date_value",
                Kind::Number => "v.number_value",
                _ => "v.text_value",
            };
            let matches = condition(&mut sql, ext.kind, col, value, q.fuzzy);
            // The rows the value must belong to: the query's own row, at the tag's level.
            let owner = match (q.level, ext.level) {
                (_, Level::Study) | (Level::Study, _) => "",
                (Level::Series, _) | (Level::Instance, Level::Series) => {
                    " AND v.series_uid = s.series_uid"
                }
                (Level::Instance, Level::Instance) => " AND v.sop_uid = i.sop_uid",
            };
            conds.push(format!(
                "EXISTS (SELECT 1 FROM dicom_tag_values v WHERE v.tag = {tag}
                           AND v.partition = t.partition AND v.study_uid = t.study_uid{owner}
                           AND {matches})"
            ));
        }
        let wants_metadata = q.level == Level::Instance && q.include != IncludeField::Default;
        let where_ = conds
            .iter()
            .map(|c| format!(" AND {c}"))
            .collect::<String>();
        let limit = sql.bind(q.limit);
        let offset = sql.bind(q.offset);
        let study_sql = study_counts_sql(q.wants_study_counts(&scope));
        let series_sql = if q.wants_series_count(&scope) {
            "(SELECT count(*) FROM dicom_instances m WHERE m.partition = s.partition
                AND m.study_uid = s.study_uid AND m.series_uid = s.series_uid)"
        } else {
            "NULL::bigint"
        };
        sql.text = match q.level {
            Level::Study => format!(
                "SELECT t.study_uid, t.study_json, {study_sql}
                 FROM dicom_studies t WHERE t.partition = {p}{where_}
                 ORDER BY t.study_uid LIMIT {limit} OFFSET {offset}"
            ),
            Level::Series => format!(
                "SELECT s.study_uid, s.series_uid, s.series_json, t.study_json, {series_sql},
                   {study_sql}
                 FROM dicom_series s
                 JOIN dicom_studies t ON t.partition = s.partition AND t.study_uid = s.study_uid
                 WHERE s.partition = {p}{where_}
                 ORDER BY s.study_uid, s.series_uid LIMIT {limit} OFFSET {offset}"
            ),
            Level::Instance => format!(
                "SELECT i.study_uid, i.series_uid, i.sop_uid, i.instance_json, s.series_json,
                   t.study_json, {}, {series_sql}, {study_sql}
                 FROM dicom_instances i
                 JOIN dicom_series s ON s.partition = i.partition AND s.study_uid = i.study_uid
                      AND s.series_uid = i.series_uid
                 JOIN dicom_studies t ON t.partition = i.partition AND t.study_uid = i.study_uid
                 WHERE i.partition = {p}{where_}
                 ORDER BY i.study_uid, i.series_uid, i.instance_number NULLS LAST, i.sop_uid
                 LIMIT {limit} OFFSET {offset}",
                if wants_metadata {
                    "i.metadata"
                } else {
                    "NULL::text"
                }
            ),
        };
        let c = self.pool.get().await?;
        let params: Vec<&(dyn ToSql + Sync)> = sql
            .params
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = c.query(&sql.text, &params).await?;
        Ok(rows
            .iter()
            .map(|r| match q.level {
                Level::Study => QidoMatch {
                    study_uid: r.get(0),
                    series_uid: None,
                    sop_uid: None,
                    objects: vec![r.get(1)],
                    study: study_counts(r, 2),
                    series_instances: None,
                    metadata: None,
                    parents: Vec::new(),
                },
                Level::Series => QidoMatch {
                    study_uid: r.get(0),
                    series_uid: Some(r.get(1)),
                    sop_uid: None,
                    // Study attributes first, so a series' own values win on the rare overlap.
                    objects: if scope.study.is_none() {
                        vec![r.get(3), r.get(2)]
                    } else {
                        vec![r.get(2)]
                    },
                    study: study_counts(r, 5),
                    series_instances: r.get(4),
                    metadata: None,
                    parents: if scope.study.is_none() {
                        Vec::new()
                    } else {
                        vec![r.get(3)]
                    },
                },
                Level::Instance => {
                    let (mut objects, mut parents) = (Vec::new(), Vec::new());
                    if scope.study.is_none() {
                        objects.push(r.get(5));
                    } else {
                        parents.push(r.get(5));
                    }
                    if scope.series.is_none() {
                        objects.push(r.get(4));
                    } else {
                        parents.push(r.get(4));
                    }
                    objects.push(r.get(3));
                    QidoMatch {
                        study_uid: r.get(0),
                        series_uid: Some(r.get(1)),
                        sop_uid: Some(r.get(2)),
                        objects,
                        study: study_counts(r, 8),
                        series_instances: r.get(7),
                        metadata: r.get(6),
                        parents,
                    }
                }
            })
            .collect())
    }
}

fn condition(sql: &mut Sql, kind: Kind, col: &str, value: &str, fuzzy: bool) -> String {
    match kind {
        Kind::Uid => {
            let v = sql.bind(uids(value).map(str::to_owned).collect::<Vec<_>>());
            format!("{col} = ANY({v})")
        }
        Kind::Integer => {
            let v = sql.bind(value.parse::<i32>().unwrap_or_default());
            format!("{col} = {v}")
        }
        Kind::Number => {
            let v = sql.bind(value.parse::<f64>().unwrap_or_default());
            format!("{col} = {v}")
        }
        Kind::Text => match like_pattern(value) {
            Some(p) => {
                let v = sql.bind(p);
                format!("{col} LIKE {v}")
            }
            None => {
                let v = sql.bind(value.to_owned());
                format!("{col} = {v}")
            }
        },
        Kind::TextFolded => match like_pattern(value) {
            Some(p) => {
                let v = sql.bind(p);
                format!("lower({col}) LIKE lower({v})")
            }
            None => {
                let v = sql.bind(value.to_owned());
                format!("lower({col}) = lower({v})")
            }
        },
        Kind::Name => {
            let words = name_words(value);
            if fuzzy {
                // Each word of the query begins some word of the name.
                let mut parts = Vec::new();
                for w in words.split(' ').filter(|w| !w.is_empty()) {
                    let w = w.replace(['*', '?'], "");
                    let escaped = like_pattern(&format!("{w}*")).unwrap_or_default();
                    let start = sql.bind(escaped.clone());
                    let inner = sql.bind(format!("% {escaped}"));
                    parts.push(format!("({col} LIKE {start} OR {col} LIKE {inner})"));
                }
                if parts.is_empty() {
                    "TRUE".into()
                } else {
                    parts.join(" AND ")
                }
            } else {
                match like_pattern(&words) {
                    Some(p) => {
                        let v = sql.bind(p);
                        format!("{col} LIKE {v}")
                    }
                    None => {
                        let v = sql.bind(words);
                        format!("{col} = {v}")
                    }
                }
            }
        }
        Kind::Date => {
            let (from, to) = date_range(value).unwrap_or((None, None));
            let mut parts = Vec::new();
            if let Some(f) = from {
                let v = sql.bind(f);
                parts.push(format!("{col} >= {v}"));
            }
            if let Some(t) = to {
                let v = sql.bind(t);
                parts.push(format!("{col} <= {v}"));
            }
            parts.join(" AND ")
        }
        Kind::Modalities => {
            // A list of modalities, any of which a series of the study has; with `*` or `?`
            // in one (PS3.4 C.2.2.2.4 allows them on CS), each is a pattern.
            let wild = uids(value).any(|m| m.contains(['*', '?']));
            let (op, values): (&str, Vec<String>) = if wild {
                ("LIKE", uids(value).map(to_like).collect())
            } else {
                ("=", uids(value).map(str::to_owned).collect())
            };
            let v = sql.bind(values);
            format!(
                "EXISTS (SELECT 1 FROM dicom_series m WHERE m.partition = t.partition
                           AND m.study_uid = t.study_uid AND m.modality {op} ANY({v}))"
            )
        }
    }
}

#[cfg(test)]
mod tests;
