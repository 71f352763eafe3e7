//! The 16-parameter table mirroring the fixture mp_types (its defaults, one parameter of every
//! standard type), shared by the property tests (`tests/params_props.rs`) and the parameter
//! benchmark (`sim/benches/params.rs`), which include this file by path.

use sim::params::{ParamDecl, ParamType as T, Value};

/// A string value.
pub fn s(v: &str) -> Value {
    Value::Str(Some(v.as_bytes().to_vec()))
}

/// Table A: mp_types' parameters (its defaults; an int array with a count), 16 of them, one
/// of every standard type.
pub fn table_a() -> Vec<ParamDecl> {
    let p = |n: &str, t: T, v: Value| ParamDecl::new(n, t, 0o644, v);
    vec![
        p("p_bool", T::Bool, Value::Bool(true)),
        p("p_invbool", T::Invbool, Value::Bool(true)),
        p("p_bint", T::Bint, Value::Int(1)),
        p("p_byte", T::Byte, Value::Int(42)),
        p("p_short", T::Short, Value::Int(-1234)),
        p("p_ushort", T::Ushort, Value::Int(54321)),
        p("p_int", T::Int, Value::Int(-123_456)),
        p("p_uint", T::Uint, Value::Int(3_000_000_000)),
        p("p_long", T::Long, Value::Int(-5_000_000_000)),
        p("p_ulong", T::Ulong, Value::Int(10_000_000_000)),
        p(
            "p_ullong",
            T::Ullong,
            Value::Int(18_000_000_000_000_000_000),
        ),
        p("p_hexint", T::Hexint, Value::Int(0xbeef)),
        p("p_charp", T::Charp, s("hello")),
        p("p_string", T::String { maxlen: 16 }, s("str")),
        p(
            "p_intarr",
            T::Array {
                elem: Box::new(T::Int),
                max: 4,
                with_num: true,
            },
            Value::Array((1..=4).map(Value::Int).collect()),
        ),
        p("p_boolen", T::BoolEnableOnly, Value::Bool(true)),
    ]
}
