//! Tests of `wire`.

use super::auth::{auth_switch, rsa_encrypt_password};
use super::results::lenenc;
use super::*;
use mysql_common::packets::AuthPlugin;

#[test]
fn mariadb_extended_metadata_is_split_off_a_column_definition() {
    use mysql_common::constants::ColumnType;
    // catalog, schema, table, org_table, name, org_name.
    let mut names = Vec::new();
    for name in ["def", "db", "t", "t", "doc", "doc"] {
        names.push(name.len() as u8);
        names.extend_from_slice(name.as_bytes());
    }
    // 0x0c, charset 45, length, type BLOB (0xfc), flags, decimals, filler.
    let mut fixed = vec![0x0c, 45, 0];
    fixed.extend_from_slice(&u32::MAX.to_le_bytes());
    fixed.extend_from_slice(&[0xfc, 0x10, 0x00, 0x00, 0x00, 0x00]);
    // [kind 1 "json"] [kind 0 "longtext"].
    let field = [&[1u8, 4][..], b"json", &[0, 8], b"longtext"].concat();
    let packet = [&names[..], &[field.len() as u8], &field, &fixed].concat();
    let (column, ext) = split_extended(&packet).unwrap();
    assert_eq!(column.name_str(), "doc");
    assert_eq!(column.schema_str(), "db");
    assert_eq!(column.column_type(), ColumnType::MYSQL_TYPE_BLOB);
    assert_eq!(column.character_set(), 45);
    assert_eq!(column.column_length(), u32::MAX);
    assert_eq!(ext.format.as_deref(), Some("json"));
    assert_eq!(ext.type_name.as_deref(), Some("longtext"));
    // An empty field: no metadata; one cut short: no column.
    let packet = [&names[..], &[0], &fixed].concat();
    assert_eq!(split_extended(&packet).unwrap().1, Extended::default());
    assert!(split_extended(&packet[..names.len() + 1]).is_none());
    let bad = [&names[..], &[3, 1, 9, b'x'], &fixed].concat();
    assert!(split_extended(&bad).is_none());
}

#[test]
fn length_encoded_integers_and_strings() {
    let cases: [(&[u8], u64, usize); 5] = [
        (&[0x00], 0, 1),
        (&[0xfa], 250, 1),
        (&[0xfc, 0xfb, 0x00], 251, 3),
        (&[0xfd, 0x01, 0x02, 0x03], 0x03_0201, 4),
        (&[0xfe, 1, 0, 0, 0, 0, 0, 0, 0x80], 0x8000_0000_0000_0001, 9),
    ];
    for (bytes, value, len) in cases {
        let mut at = 0;
        assert_eq!(lenenc(bytes, &mut at), Some(value), "{bytes:?}");
        assert_eq!(at, len);
        let mut at = 0;
        assert_eq!(lenenc(&bytes[..len - 1], &mut at), None, "cut {bytes:?}");
    }
    // 0xfb is NULL in a row and 0xff no length at all.
    assert_eq!(lenenc(&[0xfb], &mut 0), None);
    assert_eq!(lenenc(&[0xff], &mut 0), None);
    let mut at = 0;
    assert_eq!(lenenc_bytes(b"\x03abcd", &mut at), Some(&b"abc"[..]));
    assert_eq!(at, 4);
    assert_eq!(lenenc_bytes(b"\x05abcd", &mut 0), None);
}

#[test]
fn auth_switch_keeps_an_ed25519_nonce_whole() {
    let mut packet = vec![0xfe];
    packet.extend_from_slice(b"client_ed25519\0");
    let mut nonce = [7u8; 32];
    nonce[31] = 0;
    packet.extend_from_slice(&nonce);
    let (plugin, data) = auth_switch(&packet).unwrap();
    assert!(matches!(plugin, AuthPlugin::Ed25519));
    assert_eq!(data, nonce);
    let mut packet = vec![0xfe];
    packet.extend_from_slice(b"mysql_native_password\0");
    packet.extend_from_slice(&[1u8; 20]);
    packet.push(0);
    assert_eq!(auth_switch(&packet).unwrap().1, [1u8; 20]);
    assert!(auth_switch(&[0xfe, b'x']).is_err());
    assert!(auth_switch(&[0x00]).is_err());
}

#[test]
fn rsa_password_errors_instead_of_panicking() {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let nonce = [3u8; 20];
    assert!(matches!(
        rsa_encrypt_password(b"pw\0", &nonce, b"not a key"),
        Err(Error::Auth(_))
    ));
    assert!(matches!(
        rsa_encrypt_password(
            b"pw\0",
            &nonce,
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        ),
        Err(Error::Auth(_))
    ));
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let encrypted = rsa_encrypt_password(b"secret\0", &nonce, pem.as_bytes()).unwrap();
    assert_eq!(encrypted.len(), 128);
    // OAEP-SHA1 in 1024 bits holds 86 bytes at most.
    let long = vec![b'x'; 200];
    let Err(Error::Auth(message)) = rsa_encrypt_password(&long, &nonce, pem.as_bytes()) else {
        panic!("a long password must be refused");
    };
    assert!(message.contains("TLS"), "{message}");
}

/// A server that greets (mysql_native_password, no TLS), accepts any
/// login, then answers the first command with `reply`: raw bytes,
/// headers included, so they can be anything.
async fn scripted(reply: Vec<u8>) -> Opts {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let caps: u32 = 0x0000_0001
            | 0x0000_0200
            | 0x0000_2000
            | 0x0000_8000
            | 0x0002_0000
            | 0x0008_0000
            | 0x0100_0000;
        let mut hs = vec![10];
        hs.extend_from_slice(b"5.7.99-scripted\0");
        hs.extend_from_slice(&9u32.to_le_bytes());
        hs.extend_from_slice(b"abcdefgh\0");
        hs.extend_from_slice(&(caps as u16).to_le_bytes());
        hs.push(45);
        hs.extend_from_slice(&2u16.to_le_bytes());
        hs.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        hs.push(21);
        hs.extend_from_slice(&[0; 10]);
        hs.extend_from_slice(b"ijklmnopqrst\0");
        hs.extend_from_slice(b"mysql_native_password\0");
        let frame = |p: &[u8], seq: u8| {
            let mut f = (p.len() as u32).to_le_bytes()[..3].to_vec();
            f.push(seq);
            f.extend_from_slice(p);
            f
        };
        s.write_all(&frame(&hs, 0)).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        s.write_all(&frame(&[0, 0, 0, 2, 0, 0, 0], 2))
            .await
            .unwrap();
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(&reply).await;
        // Then silence, or the end of the connection after a while.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    });
    Opts {
        host: "127.0.0.1".into(),
        port,
        user: "u".into(),
        password: Some("p".into()),
        database: None,
        tls: None,
    }
}

fn frame(payload: &[u8], seq: u8) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    f.push(seq);
    f.extend_from_slice(payload);
    f
}

/// One text result of one column: `SELECT 'x'` as the server sends it.
fn one_column_result(row: &[u8]) -> Vec<u8> {
    let mut column = Vec::new();
    for part in [&b"def"[..], b"", b"", b"", b"c", b""] {
        column.push(part.len() as u8);
        column.extend_from_slice(part);
    }
    column.extend_from_slice(&[0x0c, 45, 0, 4, 0, 0, 0, 253, 0, 0, 0x1f, 0, 0]);
    let mut reply = frame(&[1], 1);
    reply.extend(frame(&column, 2));
    reply.extend(frame(row, 3));
    reply.extend(frame(&[0xfe, 0, 0, 2, 0, 0, 0], 4));
    reply
}

async fn read_all(reply: Vec<u8>) -> Result<usize, Error> {
    let mut conn = Conn::connect(&scripted(reply).await).await?;
    let mut rows = 0;
    if let Head::Columns(_) = conn.query("SELECT 'x'").await? {
        while conn.next_row().await? {
            rows += 1;
        }
    }
    Ok(rows)
}

#[tokio::test]
async fn the_packet_reader_refuses_bad_streams_without_panicking() {
    // The well-formed reply reads.
    assert_eq!(read_all(one_column_result(&[1, b'x'])).await.unwrap(), 1);
    // Desynchronised: the row packet's sequence number skips one.
    let mut desync = one_column_result(&[1, b'x']);
    let row_at = desync.len() - 11 - 6;
    desync[row_at + 3] = 9;
    assert!(matches!(read_all(desync).await, Err(Error::Protocol(m)) if m.contains("sequence")));
    // Truncated: the connection ends inside a packet.
    let mut cut = one_column_result(&[1, b'x']);
    cut.truncate(cut.len() - 9);
    assert!(matches!(read_all(cut).await, Err(Error::Io(_))));
    // Oversized: a column count no server sends.
    let huge = frame(&[0xfe, 0, 0, 0, 0, 1, 0, 0, 0], 1);
    assert!(matches!(read_all(huge).await, Err(Error::Protocol(m)) if m.contains("columns")));
    // Wrong header: an ERR packet cut after its marker.
    assert!(matches!(
        read_all(frame(&[0xff, 1], 1)).await,
        Err(Error::Protocol(_))
    ));
    // An empty packet where a response starts.
    assert!(matches!(
        read_all(frame(&[], 1)).await,
        Err(Error::Protocol(_))
    ));
}

#[test]
fn mysql_commons_plugin_data_loses_a_trailing_zero() {
    // Why auth_switch reads the raw data: the library's accessor takes a
    // last 0 byte off any plugin's data, a 32-byte ed25519 nonce too.
    let mut packet = vec![0xfe];
    packet.extend_from_slice(b"client_ed25519\0");
    packet.extend_from_slice(&[5u8; 31]);
    packet.push(0);
    let switch = ParseBuf(&packet)
        .parse::<mysql_common::packets::AuthSwitchRequest>(())
        .unwrap();
    assert_eq!(switch.plugin_data().len(), 31);
    assert_eq!(auth_switch(&packet).unwrap().1.len(), 32);
}
