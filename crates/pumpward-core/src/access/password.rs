//! Password policy and password storage.
//!
//! The policy follows NIST SP 800-63B (password verifiers: rev. 3 §5.1.1.2,
//! rev. 4 §3.1.1.2) rather than the habits of the 2000s: length and a
//! breach-list check protect accounts; composition rules ("one upper-case
//! letter, one digit, one symbol") do not. They push people towards
//! `Password1!`, which every cracker tries first. So a new password must be
//! 12 to 128 characters long, must not be a known-common or breached password
//! (even with digits or symbols tacked on the end), must not contain the
//! username and must not be one character repeated; anything else,
//! including spaces and any Unicode, is allowed.
//!
//! Passwords are stored as Argon2id PHC strings with the OWASP Password Storage
//! Cheat Sheet's parameters (19 MiB, 2 passes, 1 lane), which makes each guess
//! against a stolen database cost real memory and time. Because the parameters
//! travel inside each PHC string, they can be raised later: [`needs_rehash`]
//! tells the login handler when to re-hash a password it has just verified.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::collections::HashSet;
use std::sync::LazyLock;

/// The shortest password accepted, in characters (Unicode scalar values).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted, in characters. NIST asks for at least 64 so
/// that passphrases fit; the bound keeps hashing cost and request size small.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Argon2id memory cost in KiB (OWASP: 19 MiB).
pub const ARGON2_M_COST_KIB: u32 = 19_456;
/// Argon2id passes over memory (OWASP: 2).
pub const ARGON2_T_COST: u32 = 2;
/// Argon2id lanes (OWASP: 1).
pub const ARGON2_P_COST: u32 = 1;

/// Why a proposed password was refused. The messages are shown to the user as
/// they are, so they say what to do rather than quote a rule number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("a password needs at least {} characters", MIN_PASSWORD_CHARS)]
    TooShort,
    #[error("a password may have at most {} characters", MAX_PASSWORD_CHARS)]
    TooLong,
    #[error("a password must not contain your username")]
    ContainsUsername,
    #[error(
        "this password is too common: it is on lists of breached passwords that attackers try first"
    )]
    Common,
    #[error("a password must not be a single character repeated")]
    RepeatedCharacter,
}

/// The bundled breach list: lowercase, one password per line. See
/// `data/README.md` for where it comes from.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// Checks a password a user proposes for themselves (first setup, change,
/// reset). Returns the first problem found, in the order: length, repetition,
/// username, breach list.
///
/// Only new passwords are checked: a stored password that predates a policy
/// change still verifies; whether to ask its owner for a new one is the
/// caller's decision.
pub fn check_new_password(password: &str, username: &str) -> Result<(), PasswordProblem> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordProblem::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordProblem::TooLong);
    }
    let mut it = password.chars();
    if let Some(first) = it.next() {
        if it.all(|c| c == first) {
            return Err(PasswordProblem::RepeatedCharacter);
        }
    }
    let lower = password.to_lowercase();
    let user = username.trim().to_lowercase();
    if !user.is_empty() && lower.contains(&user) {
        return Err(PasswordProblem::ContainsUsername);
    }
    if is_common(&lower) {
        return Err(PasswordProblem::Common);
    }
    Ok(())
}

/// Whether a lowercased password is on the breach list, as is or once some or
/// all of the digits, punctuation and spaces people append to satisfy old
/// composition rules ("password123!", "iloveyou2024") are stripped from its
/// end. Every such prefix is tried, not only the fully stripped one, so that
/// "thx1138 2024!" is caught through "thx1138" although "thx" is not on
/// the list.
fn is_common(lower: &str) -> bool {
    if COMMON_PASSWORDS.contains(lower) {
        return true;
    }
    let appended = |c: char| c.is_ascii_digit() || c.is_ascii_punctuation() || c.is_whitespace();
    let mut prefix = lower;
    while let Some(c) = prefix.chars().next_back().filter(|&c| appended(c)) {
        prefix = &prefix[..prefix.len() - c.len_utf8()];
        if COMMON_PASSWORDS.contains(prefix) {
            return true;
        }
    }
    false
}

/// The one Argon2id configuration new hashes are made with.
fn hasher() -> Argon2<'static> {
    let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
        .expect("the OWASP Argon2id parameters are within Argon2's limits");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password for storage: Argon2id with the OWASP parameters and a
/// fresh 16-byte salt from the operating system's CSPRNG, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
///
/// Call [`check_new_password`] first; this function hashes whatever it gets.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        // Fails only for parameters or salts outside Argon2's limits, and both
        // are fixed here.
        .expect("Argon2id hashing with fixed, valid parameters cannot fail")
        .to_string()
}

/// Upper bounds on the cost parameters [`verify_password`] will honour. A PHC
/// string is data: one corrupted or planted row must not make a login
/// allocate gigabytes (an allocation failure aborts the process) or spin for
/// minutes. The bounds are far above anything Pumpward writes.
const MAX_VERIFY_M_COST_KIB: u32 = 256 * 1024;
const MAX_VERIFY_T_COST: u32 = 16;
const MAX_VERIFY_P_COST: u32 = 16;

/// Parses a stored PHC string, refusing non-Argon2 and absurdly costly ones.
fn parse_phc(phc: &str) -> Option<(PasswordHash<'_>, Params)> {
    let parsed = PasswordHash::new(phc).ok()?;
    Algorithm::try_from(parsed.algorithm).ok()?;
    let params = Params::try_from(&parsed).ok()?;
    if params.m_cost() > MAX_VERIFY_M_COST_KIB
        || params.t_cost() > MAX_VERIFY_T_COST
        || params.p_cost() > MAX_VERIFY_P_COST
    {
        return None;
    }
    Some((parsed, params))
}

/// Checks a password against a stored PHC string. The parameters, salt and
/// variant come from the string, so hashes made with older parameters still
/// verify. The final comparison is constant-time (done by `password-hash`).
///
/// Returns `false`, and never panics, for a malformed or unsupported hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Some((parsed, _)) = parse_phc(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Whether a stored hash should be replaced by a fresh [`hash_password`] the
/// next time its user logs in successfully (the only moment the plain
/// password is at hand): true when it is not Argon2id with today's parameters.
pub fn needs_rehash(phc: &str) -> bool {
    let Some((parsed, params)) = parse_phc(phc) else {
        return true;
    };
    Algorithm::try_from(parsed.algorithm).ok() != Some(Algorithm::Argon2id)
        || parsed.version != Some(Version::V0x13.into())
        || params.m_cost() != ARGON2_M_COST_KIB
        || params.t_cost() != ARGON2_T_COST
        || params.p_cost() != ARGON2_P_COST
        // A hash of another length is not one this code wrote (a truncated
        // string whose base64 still decodes, for instance).
        || parsed.hash.map(|h| h.len()) != Some(argon2::Params::DEFAULT_OUTPUT_LEN)
}

/// A hash with today's parameters of 32 random bytes that were thrown away,
/// so no password verifies against it.
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$I7nSkJAa9XIgj55o/nUDNg$H6rt2Cr8gS5du7kIQ6JNJUD8/2z9FVlPBJFOrDJYvAw";

/// Spends the time of one [`verify_password`] without checking anything.
///
/// Call it when a login names a username that does not exist (or a disabled
/// account, or one without a password). Verifying a real password costs tens
/// of milliseconds of Argon2; answering "wrong username or password" at once
/// for unknown names would let anyone time the responses and learn which
/// usernames exist, and then aim guessing or phishing at exactly those
/// accounts. Running the same Argon2 work against a fixed hash with the same
/// parameters makes both answers take the same time.
pub fn dummy_verify(password: &str) {
    std::hint::black_box(verify_password(std::hint::black_box(password), DUMMY_PHC));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn length_counts_characters_not_bytes() {
        // 11 characters but 13 bytes: too short.
        assert_eq!(
            check_new_password("grüße strße", "alice"),
            Err(PasswordProblem::TooShort)
        );
        // 12 characters, 14 bytes: long enough.
        assert_eq!(check_new_password("grüße straße", "alice"), Ok(()));
    }

    #[test]
    fn length_boundaries() {
        let ok = "correct horse battery staple";
        assert_eq!(
            check_new_password(&ok[..11], "alice"),
            Err(PasswordProblem::TooShort)
        );
        assert_eq!(check_new_password("correct hors", "alice"), Ok(()));
        let at_max: String = "abcdefgh".repeat(16);
        assert_eq!(at_max.chars().count(), MAX_PASSWORD_CHARS);
        assert_eq!(check_new_password(&at_max, "alice"), Ok(()));
        let over = format!("{at_max}x");
        assert_eq!(
            check_new_password(&over, "alice"),
            Err(PasswordProblem::TooLong)
        );
        assert_eq!(
            check_new_password("", "alice"),
            Err(PasswordProblem::TooShort)
        );
    }

    #[test]
    fn refuses_username_case_insensitively() {
        assert_eq!(
            check_new_password("my name is ALICE, hello", "alice"),
            Err(PasswordProblem::ContainsUsername)
        );
        assert_eq!(
            check_new_password("x-j.doe@ward4-rocks", "J.Doe@Ward4"),
            Err(PasswordProblem::ContainsUsername)
        );
        // An empty username (not a valid one, but no reason to panic) is ignored.
        assert_eq!(check_new_password("correct horse battery", ""), Ok(()));
    }

    #[test]
    fn refuses_common_passwords() {
        for pw in [
            "1qaz2wsx3edc",
            "QWERTYUIOP12",
            "123456789012",
            "password123!",
            "Password1234",
            "iloveyou2024",
            "michael!!!!!",
            "thx1138 2024!",
            "QWER1234!!!!",
            "letmein 2025!",
        ] {
            assert_eq!(
                check_new_password(pw, "alice"),
                Err(PasswordProblem::Common),
                "{pw}"
            );
        }
    }

    #[test]
    fn refuses_a_single_repeated_character() {
        assert_eq!(
            check_new_password("aaaaaaaaaaaa", "alice"),
            Err(PasswordProblem::RepeatedCharacter)
        );
        assert_eq!(
            check_new_password("éééééééééééééé", "alice"),
            Err(PasswordProblem::RepeatedCharacter)
        );
        assert_eq!(check_new_password("aaaaaaaaaaab", "alice"), Ok(()));
    }

    #[test]
    fn no_composition_rules() {
        // All lowercase, no digits, no symbols: fine (NIST SP 800-63B).
        assert_eq!(
            check_new_password("correct horse battery staple", "alice"),
            Ok(())
        );
        assert_eq!(
            check_new_password("infusion pumps at dawn", "alice"),
            Ok(())
        );
        assert_eq!(check_new_password("пароль для насоса", "alice"), Ok(()));
    }

    #[test]
    fn messages_are_user_facing() {
        assert_eq!(
            PasswordProblem::TooShort.to_string(),
            "a password needs at least 12 characters"
        );
        assert_eq!(
            PasswordProblem::TooLong.to_string(),
            "a password may have at most 128 characters"
        );
    }

    #[test]
    fn bundled_list_is_lowercase_and_large() {
        let raw = include_str!("../../data/common-passwords.txt");
        assert!(
            COMMON_PASSWORDS.len() >= 10_000,
            "{}",
            COMMON_PASSWORDS.len()
        );
        assert_eq!(
            COMMON_PASSWORDS.len(),
            raw.lines().count(),
            "no blank or duplicate lines"
        );
        for l in raw.lines() {
            assert_eq!(l, l.trim(), "{l:?}");
            assert_eq!(l, l.to_lowercase(), "{l:?}");
        }
        for pw in ["123456", "password", "qwerty", "michael", "jessica"] {
            assert!(COMMON_PASSWORDS.contains(pw), "{pw}");
        }
    }

    #[test]
    fn hash_then_verify() {
        let phc = hash_password("correct horse battery staple");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("correct horse battery stapler", &phc));
        assert!(!verify_password("", &phc));
        assert!(!needs_rehash(&phc));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(
            hash_password("same password here"),
            hash_password("same password here")
        );
    }

    #[test]
    fn malformed_hashes_do_not_verify() {
        // A truncated hash whose base64 still decodes (1 in 16 random
        // hashes) was once taken as current; try enough to meet one.
        for _ in 0..48 {
            let good = hash_password("x");
            let truncated = &good[..good.len() - 5];
            assert!(needs_rehash(truncated), "{truncated:?}");
        }
        let good = hash_password("correct horse battery staple");
        let truncated = &good[..good.len() - 5];
        for phc in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=abc,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "$bcrypt$v=19$m=19456,t=2,p=1$I7nSkJAa9XIgj55o/nUDNg$H6rt2Cr8gS5du7kIQ6JNJUD8/2z9FVlPBJFOrDJYvAw",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            truncated,
        ] {
            assert!(!verify_password("correct horse battery staple", phc), "{phc:?}");
            assert!(needs_rehash(phc), "{phc:?}");
        }
    }

    #[test]
    fn absurd_costs_are_refused_not_attempted() {
        // 4 TiB of memory: must return false at once rather than allocate.
        let phc = "$argon2id$v=19$m=4294967295,t=2,p=1$I7nSkJAa9XIgj55o/nUDNg$H6rt2Cr8gS5du7kIQ6JNJUD8/2z9FVlPBJFOrDJYvAw";
        assert!(!verify_password("anything", phc));
        let phc = "$argon2id$v=19$m=19456,t=100000,p=1$I7nSkJAa9XIgj55o/nUDNg$H6rt2Cr8gS5du7kIQ6JNJUD8/2z9FVlPBJFOrDJYvAw";
        assert!(!verify_password("anything", phc));
    }

    #[test]
    fn older_parameters_verify_and_ask_for_rehash() {
        let params = Params::new(8 * 1024, 1, 1, None).unwrap();
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(
                b"an older stored password",
                &SaltString::generate(&mut rand::rngs::OsRng),
            )
            .unwrap()
            .to_string();
        assert!(verify_password("an older stored password", &old));
        assert!(needs_rehash(&old));
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            hasher().params().clone(),
        )
        .hash_password(
            b"an argon2i password",
            &SaltString::generate(&mut rand::rngs::OsRng),
        )
        .unwrap()
        .to_string();
        assert!(verify_password("an argon2i password", &argon2i));
        assert!(needs_rehash(&argon2i));
    }

    #[test]
    fn dummy_hash_costs_the_same_as_a_real_one() {
        // Same algorithm and parameters as hash_password, so the same time.
        let (parsed, params) = parse_phc(DUMMY_PHC).expect("dummy hash parses");
        assert_eq!(
            Algorithm::try_from(parsed.algorithm).unwrap(),
            Algorithm::Argon2id
        );
        assert_eq!(params.m_cost(), ARGON2_M_COST_KIB);
        assert_eq!(params.t_cost(), ARGON2_T_COST);
        assert_eq!(params.p_cost(), ARGON2_P_COST);
        assert!(!needs_rehash(DUMMY_PHC));
        let real = hash_password("x");
        assert_eq!(
            real.rsplitn(3, '$').nth(2),
            DUMMY_PHC.rsplitn(3, '$').nth(2),
            "same PHC prefix"
        );
        assert!(!verify_password("", DUMMY_PHC));
        dummy_verify("correct horse battery staple");
    }

    proptest! {
        #[test]
        fn policy_never_panics(pw in "\\PC{0,160}", user in "\\PC{0,20}") {
            let _ = check_new_password(&pw, &user);
        }

        #[test]
        fn verify_never_panics(phc in "(\\$argon2id\\$v=19\\$m=[0-9]{1,6},t=[0-9],p=[0-9]\\$)?\\PC{0,60}") {
            let _ = verify_password("pw", &phc);
            let _ = needs_rehash(&phc);
        }
    }
}
