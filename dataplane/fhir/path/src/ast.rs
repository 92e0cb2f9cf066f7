//! The parsed form. Left-associative operator runs and invocation chains are kept flat
//! (a first operand plus a list) so that evaluating or dropping a long expression such as
//! a 40-way union never recurses once per operand.

use regex::Regex;

use crate::types::TypeSpec;

#[derive(Debug)]
pub(crate) enum Expr {
    Empty,
    Bool(bool),
    Str(Box<str>),
    Int(i64),
    Dec(f64),
    /// A quantity literal: the value and a UCUM unit or singular calendar keyword.
    Quantity(f64, Box<str>),
    Date(Box<str>),
    DateTime(Box<str>),
    Time(Box<str>),
    This,
    Index,
    Total,
    Var(Var),
    /// An identifier with no receiver that is not a type name: a member of the focus.
    Ident(Box<str>),
    /// A leading R4 type name (`Patient` in `Patient.name`): keeps the focus items of that
    /// type. Decided at parse time because the search indexer meets one in every branch of
    /// 30-way unions such as `CapabilityStatement.url | CodeSystem.url | ...`.
    TypeName(Box<str>),
    /// A function with no receiver: it applies to the focus.
    Call(Box<Call>),
    Path(Box<Expr>, Vec<Step>),
    Negate(Box<Expr>),
    Binary(Box<Expr>, Vec<(Op, Operand)>),
}

#[derive(Debug)]
pub(crate) enum Var {
    Resource,
    Context,
    /// A constant such as `%ucum` or `%`vs-administrative-gender``.
    Const(Box<str>),
}

#[derive(Debug)]
pub(crate) enum Step {
    Member(Box<str>),
    Index(Expr),
    Call(Call),
}

#[derive(Debug)]
pub(crate) enum Operand {
    Expr(Expr),
    Type(TypeSpec),
}

#[derive(Debug)]
pub(crate) struct Call {
    pub func: Func,
    pub args: Vec<Expr>,
    /// The type argument of `ofType`, `as` and `is`.
    pub type_arg: Option<TypeSpec>,
    /// `matches`/`replaceMatches` with a literal pattern, compiled once at parse time.
    pub regex: Option<Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Implies,
    Or,
    Xor,
    And,
    In,
    Contains,
    Eq,
    Equiv,
    Ne,
    NotEquiv,
    Lt,
    Gt,
    Le,
    Ge,
    Union,
    Is,
    As,
    Add,
    Sub,
    Concat,
    Mul,
    Div,
    IntDiv,
    Mod,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Implies => "implies",
            Op::Or => "or",
            Op::Xor => "xor",
            Op::And => "and",
            Op::In => "in",
            Op::Contains => "contains",
            Op::Eq => "=",
            Op::Equiv => "~",
            Op::Ne => "!=",
            Op::NotEquiv => "!~",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Ge => ">=",
            Op::Union => "|",
            Op::Is => "is",
            Op::As => "as",
            Op::Add => "+",
            Op::Sub => "-",
            Op::Concat => "&",
            Op::Mul => "*",
            Op::Div => "/",
            Op::IntDiv => "div",
            Op::Mod => "mod",
        }
    }
}

macro_rules! functions {
    ($($variant:ident = $name:literal ($min:literal, $max:literal),)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Func { $($variant,)* }

        impl Func {
            pub fn lookup(name: &str) -> Option<Func> {
                match name { $($name => Some(Func::$variant),)* _ => None }
            }

            pub fn name(self) -> &'static str {
                match self { $(Func::$variant => $name,)* }
            }

            /// Minimum and maximum argument counts.
            pub fn arity(self) -> (usize, usize) {
                match self { $(Func::$variant => ($min, $max),)* }
            }
        }
    };
}

functions! {
    Empty = "empty"(0, 0),
    Exists = "exists"(0, 1),
    All = "all"(1, 1),
    AllTrue = "allTrue"(0, 0),
    AnyTrue = "anyTrue"(0, 0),
    AllFalse = "allFalse"(0, 0),
    AnyFalse = "anyFalse"(0, 0),
    SubsetOf = "subsetOf"(1, 1),
    SupersetOf = "supersetOf"(1, 1),
    Count = "count"(0, 0),
    Distinct = "distinct"(0, 0),
    IsDistinct = "isDistinct"(0, 0),
    Where = "where"(1, 1),
    Select = "select"(1, 1),
    Repeat = "repeat"(1, 1),
    OfType = "ofType"(1, 1),
    Single = "single"(0, 0),
    First = "first"(0, 0),
    Last = "last"(0, 0),
    Tail = "tail"(0, 0),
    Skip = "skip"(1, 1),
    Take = "take"(1, 1),
    Intersect = "intersect"(1, 1),
    Exclude = "exclude"(1, 1),
    Union = "union"(1, 1),
    Combine = "combine"(1, 1),
    Iif = "iif"(2, 3),
    ToBoolean = "toBoolean"(0, 0),
    ConvertsToBoolean = "convertsToBoolean"(0, 0),
    ToInteger = "toInteger"(0, 0),
    ConvertsToInteger = "convertsToInteger"(0, 0),
    ToDecimal = "toDecimal"(0, 0),
    ConvertsToDecimal = "convertsToDecimal"(0, 0),
    ToString = "toString"(0, 0),
    ConvertsToString = "convertsToString"(0, 0),
    ToDate = "toDate"(0, 0),
    ConvertsToDate = "convertsToDate"(0, 0),
    ToDateTime = "toDateTime"(0, 0),
    ConvertsToDateTime = "convertsToDateTime"(0, 0),
    ToTime = "toTime"(0, 0),
    ConvertsToTime = "convertsToTime"(0, 0),
    ToQuantity = "toQuantity"(0, 1),
    ConvertsToQuantity = "convertsToQuantity"(0, 1),
    IndexOf = "indexOf"(1, 1),
    Substring = "substring"(1, 2),
    StartsWith = "startsWith"(1, 1),
    EndsWith = "endsWith"(1, 1),
    Contains = "contains"(1, 1),
    Upper = "upper"(0, 0),
    Lower = "lower"(0, 0),
    Replace = "replace"(2, 2),
    Matches = "matches"(1, 1),
    ReplaceMatches = "replaceMatches"(2, 2),
    Length = "length"(0, 0),
    ToChars = "toChars"(0, 0),
    Trim = "trim"(0, 0),
    Split = "split"(1, 1),
    Join = "join"(0, 1),
    Abs = "abs"(0, 0),
    Ceiling = "ceiling"(0, 0),
    Floor = "floor"(0, 0),
    Round = "round"(0, 1),
    Truncate = "truncate"(0, 0),
    Sqrt = "sqrt"(0, 0),
    Exp = "exp"(0, 0),
    Ln = "ln"(0, 0),
    Log = "log"(1, 1),
    Power = "power"(1, 1),
    Children = "children"(0, 0),
    Descendants = "descendants"(0, 0),
    Trace = "trace"(1, 2),
    Now = "now"(0, 0),
    Today = "today"(0, 0),
    TimeOfDay = "timeOfDay"(0, 0),
    Not = "not"(0, 0),
    As = "as"(1, 1),
    Is = "is"(1, 1),
    Aggregate = "aggregate"(1, 2),
    Resolve = "resolve"(0, 0),
    Extension = "extension"(1, 1),
    HasValue = "hasValue"(0, 0),
    GetValue = "getValue"(0, 0),
    Type = "type"(0, 0),
}

/// Functions of the FHIR FHIRPath profile that need a terminology server or the full
/// StructureDefinitions; named so a user learns they are unsupported, not misspelled.
pub(crate) const UNSUPPORTED_FUNCTIONS: &[(&str, &str)] = &[
    ("memberOf", "it needs a terminology server"),
    ("subsumes", "it needs a terminology server"),
    ("subsumedBy", "it needs a terminology server"),
    ("conformsTo", "it needs the profiles' StructureDefinitions"),
    ("elementDefinition", "it needs the StructureDefinitions"),
    ("slice", "it needs the StructureDefinitions"),
    ("checkModifiers", "it needs the StructureDefinitions"),
    ("htmlChecks", "narrative validation is not implemented"),
    ("encode", "it is not part of FHIRPath N1"),
    ("decode", "it is not part of FHIRPath N1"),
];
