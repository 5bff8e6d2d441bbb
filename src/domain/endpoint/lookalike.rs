//! Non-ASCII characters that some reader of a URL path takes for a dot, a
//! slash, a backslash or a percent sign, or drops as if they were not there.
//! A backend that applies Unicode NFKC to the path (or folds it the way IDNA
//! or a code page "best fit" does) would see structure we did not judge.

/// Whether `c` reads as `.`, `/`, `\` or `%` after NFKC, or is a lookalike
/// that other common folds turn into a dot or slash. The NFKC part is every
/// code point whose NFKC form contains one of those four characters; a unit
/// test holds it against a normaliser.
pub(super) fn reads_as_structure(c: char) -> bool {
    matches!(
        c,
        // ONE DOT LEADER, TWO DOT LEADER, HORIZONTAL ELLIPSIS: ".", "..", "..."
        '\u{2024}'..='\u{2026}'
        // FRACTION SLASH (a lookalike, not folded by NFKC)
        | '\u{2044}'
        // ACCOUNT OF, ADDRESSED TO THE SUBJECT: "a/c", "a/s"
        | '\u{2100}'..='\u{2101}'
        // CARE OF, CADA UNA: "c/o", "c/u"
        | '\u{2105}'..='\u{2106}'
        // DIVISION SLASH (a lookalike, not folded by NFKC)
        | '\u{2215}'
        // DIGIT ONE FULL STOP to NUMBER TWENTY FULL STOP: "1." to "20."
        | '\u{2488}'..='\u{249B}'
        // REVERSE SOLIDUS OPERATOR, BIG SOLIDUS, BIG REVERSE SOLIDUS (lookalikes)
        | '\u{29F5}'
        | '\u{29F8}'..='\u{29F9}'
        // IDEOGRAPHIC FULL STOP (IDNA maps it to ".")
        | '\u{3002}'
        // SQUARE AM, SQUARE CO, SQUARE PM: "a.m.", "Co.", "p.m."
        | '\u{33C2}'
        | '\u{33C7}'
        | '\u{33D8}'
        // PRESENTATION FORMS FOR VERTICAL ELLIPSIS and TWO DOT LEADER
        | '\u{FE19}'
        | '\u{FE30}'
        // SMALL FULL STOP, SMALL REVERSE SOLIDUS, SMALL PERCENT SIGN
        | '\u{FE52}'
        | '\u{FE68}'
        | '\u{FE6A}'
        // FULLWIDTH PERCENT SIGN, FULL STOP, SOLIDUS, REVERSE SOLIDUS
        | '\u{FF05}'
        | '\u{FF0E}'..='\u{FF0F}'
        | '\u{FF3C}'
        // HALFWIDTH IDEOGRAPHIC FULL STOP (IDNA maps it to ".")
        | '\u{FF61}'
        // DIGIT ZERO FULL STOP: "0."
        | '\u{1F100}'
    )
}

/// Whether `c` is a default-ignorable code point (Unicode
/// DerivedCoreProperties): invisible, and deleted by case-folding NFKC and
/// IDNA mapping, so `.\u{200B}.` may reach a backend as `..`.
pub(super) fn is_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}
