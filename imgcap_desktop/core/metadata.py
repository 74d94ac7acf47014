"""Write a caption into a photo's own metadata ("Write into photo").

Where it goes, so that photo managers, screen readers and exiftool find it:

* EXIF ``ImageDescription`` (0x010E), UTF-8 bytes;
* XMP ``dc:description`` (``rdf:Alt``, ``xml:lang="x-default"``);
* XMP ``Iptc4xmpCore:AltTextAccessibility`` (the IPTC 2021 alt-text field), in
  the same XMP packet;
* the keywords, when given, as XMP ``dc:subject`` (an ``rdf:Bag``): the IPTC Photo Metadata
  Standard's "Keywords" property in XMP, which exiftool reads as ``XMP-dc:Subject``. The legacy
  IPTC-IIM record (2:25 in a JPEG's APP13) is not written.

Supported containers: JPEG (APP1 segments), PNG (``eXIf`` + ``iTXt`` chunks) and
WebP (``EXIF`` + ``XMP `` RIFF chunks, ``VP8X`` flags). Each is edited at the
container level: the compressed image data is copied byte for byte, never
decoded. Every other EXIF tag (Orientation, camera, GPS, maker notes, thumbnail)
keeps its bytes and offsets, because only IFD0's table is rewritten (at the end
of the TIFF block, see :func:`_tiff_set_description`). XMP properties other than
the two above are kept; a packet that does not parse is replaced.

The new file is written next to the original and renamed over it, keeping its
permission bits; on any failure the original is left byte-identical and a
:class:`~imgcap_desktop.core.errors.SaveError` explains what to do.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path
from typing import Sequence
from xml.dom import minidom
from xml.parsers.expat import ExpatError

from imgcap_desktop.core.errors import MetadataFormatError, SaveError
from imgcap_desktop.core.export import atomic_writer, check_writable, save_error

__all__ = ["read_description", "read_keywords", "read_metadata", "write_description", "SUPPORTED_FORMATS"]

SUPPORTED_FORMATS = ("JPEG", "PNG", "WebP")

TAG_IMAGE_DESCRIPTION = 0x010E

NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_IPTC_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_XMLNS = "http://www.w3.org/2000/xmlns/"

JPEG_EXIF_HEADER = b"Exif\x00\x00"
JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"

# A JPEG segment's length field is 16 bits and counts itself.
_JPEG_MAX_PAYLOAD = 0xFFFF - 2
# Free space other tools (Lightroom, exiftool) can grow into without rewriting
# the file; dropped first when a JPEG segment would overflow.
_XMP_PADDING = 2048


class _Corrupt(Exception):
    """The container is damaged in a way we will not guess around."""


# --- text ----------------------------------------------------------------------

# XML 1.0 forbids these, and a NUL would end the EXIF ASCII string early.
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    return _INVALID_XML_CHARS.sub("", text)


# --- EXIF (TIFF structure) -------------------------------------------------------

_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}

# Little-endian header + an IFD0 with no entries and no IFD1.
_EMPTY_TIFF = b"II*\x00\x08\x00\x00\x00" + b"\x00\x00" + b"\x00\x00\x00\x00"


def _tiff_ifd0(tiff: bytes) -> tuple[str, int, list[tuple[int, int, int, bytes]], int]:
    """Return (byte order, IFD0 offset, entries, next-IFD offset) of a TIFF block."""
    if tiff[:4] == b"II*\x00":
        order = "<"
    elif tiff[:4] == b"MM\x00*":
        order = ">"
    else:
        raise _Corrupt("its EXIF block is damaged")
    (offset,) = struct.unpack(order + "I", tiff[4:8])
    if offset < 8 or offset + 2 > len(tiff):
        raise _Corrupt("its EXIF block is damaged")
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    end = offset + 2 + 12 * count
    if end + 4 > len(tiff):
        raise _Corrupt("its EXIF block is damaged")
    entries = []
    for i in range(count):
        pos = offset + 2 + 12 * i
        tag, typ, n = struct.unpack(order + "HHI", tiff[pos : pos + 8])
        entries.append((tag, typ, n, tiff[pos + 8 : pos + 12]))
    (next_ifd,) = struct.unpack(order + "I", tiff[end : end + 4])
    return order, offset, entries, next_ifd


def _out_of_line(order: str, entry: tuple[int, int, int, bytes]) -> tuple[int, int] | None:
    """(offset, size) of an entry's value when it does not fit in the entry itself."""
    _tag, typ, n, value = entry
    size = _TIFF_TYPE_SIZES.get(typ, 1) * n
    if size <= 4:
        return None
    return struct.unpack(order + "I", value)[0], size


def _tiff_get_description(tiff: bytes) -> str | None:
    order, _offset, entries, _next = _tiff_ifd0(tiff)
    for entry in entries:
        if entry[0] != TAG_IMAGE_DESCRIPTION:
            continue
        where = _out_of_line(order, entry)
        if where is None:
            raw = entry[3][: entry[2]]
        else:
            start, size = where
            raw = tiff[start : start + size]
        return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    return None


def _tiff_set_description(tiff: bytes, text: str) -> bytes:
    """Return ``tiff`` with ImageDescription = ``text`` and every other byte in place.

    Inserting an entry into IFD0 where it stands would shift everything after it
    and break every offset in the block (Exif/GPS sub-IFDs, maker notes, the
    thumbnail). Instead IFD0's table is copied to the end with the new entry and
    the header is pointed at the copy; all existing offsets stay valid.
    """
    order, old_offset, entries, next_ifd = _tiff_ifd0(tiff)
    old_desc = [e for e in entries if e[0] == TAG_IMAGE_DESCRIPTION]
    entries = [e for e in entries if e[0] != TAG_IMAGE_DESCRIPTION]

    out = bytearray(tiff)
    # Writing twice should not grow the block each time: if the tail is the
    # table (and description) we appended last time, and nothing else points
    # into it, reuse that space.
    old_end = old_offset + 2 + 12 * (len(entries) + len(old_desc)) + 4
    if old_end == len(tiff):
        cut = old_offset
        for entry in old_desc:
            where = _out_of_line(order, entry)
            if where and where[0] + where[1] + (where[1] & 1) == old_offset:
                cut = where[0]
        others = [_out_of_line(order, e) for e in entries]
        if all(w is None or w[0] + w[1] <= cut for w in others) and next_ifd < cut:
            del out[cut:]

    value = _clean(text).encode("utf-8") + b"\x00"
    if len(out) & 1:
        out += b"\x00"
    if len(value) <= 4:
        field = value.ljust(4, b"\x00")
    else:
        field = struct.pack(order + "I", len(out))
        out += value
        if len(out) & 1:
            out += b"\x00"
    entries.append((TAG_IMAGE_DESCRIPTION, 2, len(value), field))
    entries.sort(key=lambda e: e[0])  # TIFF requires ascending tags

    new_offset = len(out)
    out += struct.pack(order + "H", len(entries))
    for tag, typ, n, fld in entries:
        out += struct.pack(order + "HHI", tag, typ, n) + fld
    out += struct.pack(order + "I", next_ifd)
    out[4:8] = struct.pack(order + "I", new_offset)
    return bytes(out)


def _strip_exif_header(data: bytes) -> bytes:
    # PNG eXIf and WebP EXIF should hold bare TIFF, but some writers copy the
    # JPEG "Exif\0\0" prefix in as well.
    return data[6:] if data.startswith(b"Exif\x00") else data


# --- XMP -----------------------------------------------------------------------

_FRESH_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="imgcap-desktop">'
    f'<rdf:RDF xmlns:rdf="{NS_RDF}"><rdf:Description rdf:about=""/></rdf:RDF>'
    "</x:xmpmeta>"
)

_OUR_PROPERTIES = ((NS_DC, "description"), (NS_IPTC_CORE, "AltTextAccessibility"))
# IPTC Core's "Keywords" is dc:subject in XMP: an unordered rdf:Bag of one keyword per rdf:li.
_SUBJECT = (NS_DC, "subject")


def _parse_xmp(packet: bytes | None) -> minidom.Document | None:
    if not packet:
        return None
    packet = packet.rstrip(b"\x00 \t\r\n")
    # A DTD in a photo is never legitimate XMP; refusing it rules out entity tricks.
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return None
    try:
        doc = minidom.parseString(packet)
    except (ExpatError, ValueError, UnicodeError, LookupError):  # LookupError: <?xml encoding="UTF-0"?>
        return None
    if not doc.getElementsByTagNameNS(NS_RDF, "RDF"):
        return None
    return doc


def _elements(node):
    return [c for c in node.childNodes if c.nodeType == c.ELEMENT_NODE]


def _qname(prefix: str | None, local: str) -> str:
    return f"{prefix}:{local}" if prefix else local


def _prefix_for(doc: minidom.Document, element, uri: str, wanted: str) -> str:
    """A prefix bound to ``uri`` at ``element``, declaring one there if needed."""
    node = element
    while node is not None and node.nodeType == node.ELEMENT_NODE:
        for attr in node.attributes.values():
            if attr.prefix == "xmlns" and attr.value == uri:
                # Usable only if nothing nearer rebinds it.
                if _lookup(element, attr.localName) == uri:
                    return attr.localName
        node = node.parentNode
    # Pick a prefix that is free here, so no existing property changes meaning.
    prefix, n = wanted, 1
    while _lookup(element, prefix) is not None:
        prefix, n = f"{wanted}{n}", n + 1
    element.setAttributeNS(NS_XMLNS, f"xmlns:{prefix}", uri)
    return prefix


def _lookup(element, prefix: str) -> str | None:
    node = element
    while node is not None and node.nodeType == node.ELEMENT_NODE:
        if node.hasAttribute(f"xmlns:{prefix}"):
            return node.getAttribute(f"xmlns:{prefix}")
        node = node.parentNode
    return None


def _xmp_update(packet: bytes | None, text: str, keywords: Sequence[str] | None = None) -> str:
    """The XMP packet with our two properties set to ``text`` (and dc:subject to ``keywords``
    unless None), everything else kept."""
    doc = _parse_xmp(packet) or minidom.parseString(_FRESH_XMP)
    rdf = doc.getElementsByTagNameNS(NS_RDF, "RDF")[0]
    rdf_prefix = rdf.prefix
    descriptions = [e for e in _elements(rdf) if (e.namespaceURI, e.localName) == (NS_RDF, "Description")]
    replaced = _OUR_PROPERTIES + ((_SUBJECT,) if keywords is not None else ())
    for d in descriptions:
        for attr in list(d.attributes.values()):
            if (attr.namespaceURI, attr.localName) in replaced:
                d.removeAttributeNode(attr)
        for child in _elements(d):
            if (child.namespaceURI, child.localName) in replaced:
                d.removeChild(child)
    if descriptions:
        target = descriptions[0]
    else:
        target = doc.createElementNS(NS_RDF, _qname(rdf_prefix, "Description"))
        target.setAttributeNS(NS_RDF, _qname(rdf_prefix, "about"), "")
        rdf.appendChild(target)

    value = _clean(text)
    for uri, local, wanted in (
        (NS_DC, "description", "dc"),
        (NS_IPTC_CORE, "AltTextAccessibility", "Iptc4xmpCore"),
    ):
        prefix = _prefix_for(doc, target, uri, wanted)
        prop = doc.createElementNS(uri, _qname(prefix, local))
        alt = doc.createElementNS(NS_RDF, _qname(rdf_prefix, "Alt"))
        li = doc.createElementNS(NS_RDF, _qname(rdf_prefix, "li"))
        li.setAttributeNS(NS_XML, "xml:lang", "x-default")
        li.appendChild(doc.createTextNode(value))
        alt.appendChild(li)
        prop.appendChild(alt)
        target.appendChild(prop)
    words = [w for w in (_clean(" ".join(k.split())) for k in keywords or ()) if w]
    if words:
        prop = doc.createElementNS(NS_DC, _qname(_prefix_for(doc, target, NS_DC, "dc"), "subject"))
        bag = doc.createElementNS(NS_RDF, _qname(rdf_prefix, "Bag"))
        for word in words:
            li = doc.createElementNS(NS_RDF, _qname(rdf_prefix, "li"))
            li.appendChild(doc.createTextNode(word))
            bag.appendChild(li)
        prop.appendChild(bag)
        target.appendChild(prop)

    return doc.documentElement.toxml()


def _xmp_packet(body: str, padding: int = _XMP_PADDING) -> bytes:
    pad = ("\n" + " " * 99) * (padding // 100)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        + body
        + pad
        + '\n<?xpacket end="w"?>'
    ).encode("utf-8")


def _alt_text(prop) -> str | None:
    lis = prop.getElementsByTagNameNS(NS_RDF, "li")
    if not lis:
        return "".join(n.data for n in prop.childNodes if n.nodeType == n.TEXT_NODE).strip() or None
    chosen = next((li for li in lis if li.getAttributeNS(NS_XML, "lang") == "x-default"), lis[0])
    return "".join(n.data for n in chosen.childNodes if n.nodeType in (n.TEXT_NODE, n.CDATA_SECTION_NODE))


def _xmp_get(packet: bytes | None) -> tuple[str | None, str | None]:
    doc = _parse_xmp(packet)
    if doc is None:
        return None, None
    found: dict[tuple[str, str], str | None] = {}
    for d in doc.getElementsByTagNameNS(NS_RDF, "Description"):
        for attr in d.attributes.values():
            key = (attr.namespaceURI, attr.localName)
            if key in _OUR_PROPERTIES:
                found.setdefault(key, attr.value)
        for child in _elements(d):
            key = (child.namespaceURI, child.localName)
            if key in _OUR_PROPERTIES:
                found.setdefault(key, _alt_text(child))
    return found.get(_OUR_PROPERTIES[0]), found.get(_OUR_PROPERTIES[1])


def _xmp_keywords(packet: bytes | None) -> tuple[str, ...]:
    doc = _parse_xmp(packet)
    if doc is None:
        return ()
    words: list[str] = []
    for d in doc.getElementsByTagNameNS(NS_RDF, "Description"):
        for child in _elements(d):
            if (child.namespaceURI, child.localName) == _SUBJECT:
                for li in child.getElementsByTagNameNS(NS_RDF, "li"):
                    word = "".join(n.data for n in li.childNodes
                                   if n.nodeType in (n.TEXT_NODE, n.CDATA_SECTION_NODE)).strip()
                    if word and word not in words:
                        words.append(word)
    return tuple(words)


# --- JPEG ----------------------------------------------------------------------

# Markers that have no length field.
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes, bytes]], bytes]:
    """Split a JPEG into (marker, payload, raw bytes) before SOS, and the rest from SOS."""
    segments = []
    pos = 2
    size = len(data)
    while True:
        if pos >= size:
            raise _Corrupt("it is truncated before the image data")
        if data[pos] != 0xFF:
            raise _Corrupt("its JPEG structure is damaged")
        start = pos
        while pos < size and data[pos] == 0xFF:
            pos += 1
        if pos >= size:
            raise _Corrupt("it is truncated before the image data")
        marker = data[pos]
        pos += 1
        if marker == 0xDA:
            return segments, data[start:]
        if marker in _STANDALONE:
            segments.append((marker, b"", data[start:pos]))
            continue
        if marker in (0x00, 0xD8, 0xD9):
            raise _Corrupt("its JPEG structure is damaged")
        if pos + 2 > size:
            raise _Corrupt("it is truncated before the image data")
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2 or pos + length > size:
            raise _Corrupt("it is truncated before the image data")
        segments.append((marker, data[pos + 2 : pos + length], data[start : pos + length]))
        pos += length


def _is_exif(marker: int, payload: bytes) -> bool:
    return marker == 0xE1 and payload.startswith(b"Exif\x00")


def _is_xmp(marker: int, payload: bytes) -> bool:
    return marker == 0xE1 and payload.startswith(JPEG_XMP_HEADER)


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_write(data: bytes, text: str, keywords: Sequence[str] | None = None) -> bytes:
    segments, rest = _jpeg_segments(data)
    old_exif = next((p for m, p, _ in segments if _is_exif(m, p)), None)
    old_xmp = next((p for m, p, _ in segments if _is_xmp(m, p)), None)

    tiff = _tiff_set_description(old_exif[6:] if old_exif else _EMPTY_TIFF, text)
    exif_payload = JPEG_EXIF_HEADER + tiff
    if len(exif_payload) > _JPEG_MAX_PAYLOAD:
        raise _Corrupt("its EXIF block would exceed the 64 KB JPEG limit with this caption")

    body = _xmp_update(old_xmp[len(JPEG_XMP_HEADER) :] if old_xmp else None, text, keywords)
    xmp_payload = JPEG_XMP_HEADER + _xmp_packet(body)
    if len(xmp_payload) > _JPEG_MAX_PAYLOAD:
        xmp_payload = JPEG_XMP_HEADER + _xmp_packet(body, padding=0)
    if len(xmp_payload) > _JPEG_MAX_PAYLOAD:
        raise _Corrupt("its XMP packet would exceed the 64 KB JPEG limit")

    ours = [i for i, (m, p, _) in enumerate(segments) if _is_exif(m, p) or _is_xmp(m, p)]
    mpf = [i for i, (m, p, _) in enumerate(segments) if m == 0xE2 and p.startswith(b"MPF\x00")]
    # MPF (phone "Ultra HDR", depth maps) stores offsets to images after EOI
    # relative to its own segment; resizing anything after it would break them.
    if mpf and ours and max(ours) > mpf[0]:
        raise _Corrupt("its multi-picture layout is not supported")
    if ours:
        insert_at = ours[0]
    else:
        # EXIF right after JFIF APP0, where readers look for it.
        insert_at = 0
        while insert_at < len(segments) and segments[insert_at][0] == 0xE0:
            insert_at += 1
    new = _jpeg_segment(0xE1, exif_payload) + _jpeg_segment(0xE1, xmp_payload)

    out = bytearray(b"\xff\xd8")
    for i, (marker, payload, raw) in enumerate(segments):
        if i == insert_at:
            out += new
        if _is_exif(marker, payload) or _is_xmp(marker, payload):
            continue
        out += raw
    if insert_at >= len(segments):
        out += new
    out += rest
    return bytes(out)


def _jpeg_read(data: bytes) -> tuple[bytes | None, bytes | None]:
    segments, _rest = _jpeg_segments(data)
    exif = next((p[6:] for m, p, _ in segments if _is_exif(m, p)), None)
    xmp = next((p[len(JPEG_XMP_HEADER) :] for m, p, _ in segments if _is_xmp(m, p)), None)
    return exif, xmp


# --- PNG -----------------------------------------------------------------------


def _png_chunks(data: bytes) -> tuple[list[tuple[bytes, bytes, bytes]], bytes]:
    """(type, data, raw bytes) for each chunk up to IEND, and any trailing bytes."""
    chunks = []
    pos = len(PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise _Corrupt("it is truncated")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise _Corrupt("it is truncated")
        chunks.append((ctype, data[pos + 8 : pos + 8 + length], data[pos:end]))
        pos = end
        if ctype == b"IEND":
            break
    if chunks[0][0] != b"IHDR":
        raise _Corrupt("its PNG structure is damaged")
    return chunks, data[pos:]


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def _png_xmp_text(ctype: bytes, payload: bytes) -> bytes | None:
    """The XMP bytes if this text chunk carries the XMP packet, else None."""
    keyword, sep, rest = payload.partition(b"\x00")
    if not sep or keyword != PNG_XMP_KEYWORD:
        return None
    try:
        if ctype == b"iTXt":
            compressed, _method = rest[0], rest[1]
            _lang, _, rest = rest[2:].partition(b"\x00")
            _translated, _, text = rest.partition(b"\x00")
            return zlib.decompress(text) if compressed else text
        if ctype == b"zTXt":
            return zlib.decompress(rest[1:])
        if ctype == b"tEXt":
            return rest
    except (IndexError, zlib.error):
        return b""  # still ours to replace, just unreadable
    return None


def _png_read(data: bytes) -> tuple[bytes | None, bytes | None]:
    chunks, _trailer = _png_chunks(data)
    exif = xmp = None
    for ctype, payload, _raw in chunks:
        if ctype == b"eXIf" and exif is None:
            exif = _strip_exif_header(payload)
        elif ctype in (b"iTXt", b"tEXt", b"zTXt") and xmp is None:
            xmp = _png_xmp_text(ctype, payload)
    return exif, xmp


def _png_write(data: bytes, text: str, keywords: Sequence[str] | None = None) -> bytes:
    chunks, trailer = _png_chunks(data)
    old_exif, old_xmp = _png_read(data)
    tiff = _tiff_set_description(old_exif or _EMPTY_TIFF, text)
    xmp = _xmp_packet(_xmp_update(old_xmp, text, keywords))
    # iTXt: keyword, NUL, uncompressed, method 0, empty language, empty translation.
    itxt = PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp
    out = bytearray(PNG_SIGNATURE)
    for ctype, payload, raw in chunks:
        if ctype == b"eXIf" or (
            ctype in (b"iTXt", b"tEXt", b"zTXt") and _png_xmp_text(ctype, payload) is not None
        ):
            continue
        out += raw
        if ctype == b"IHDR":
            # eXIf must precede IDAT; right after IHDR also lets readers that stop
            # at the first IDAT (Pillow's open) see both.
            out += _png_chunk(b"eXIf", tiff) + _png_chunk(b"iTXt", itxt)
    out += trailer
    return bytes(out)


# --- WebP ----------------------------------------------------------------------

_VP8X_ALPHA, _VP8X_EXIF, _VP8X_XMP = 0x10, 0x08, 0x04
# Chunks that belong before EXIF/XMP in an extended WebP file.
_WEBP_IMAGE_CHUNKS = {b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"}


def _webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    (riff_size,) = struct.unpack("<I", data[4:8])
    end = min(len(data), 8 + riff_size)
    if 8 + riff_size > len(data):
        raise _Corrupt("it is truncated")
    chunks = []
    pos = 12
    while pos < end:
        if pos + 8 > end:
            raise _Corrupt("it is truncated")
        fourcc, size = struct.unpack("<4sI", data[pos : pos + 8])
        if pos + 8 + size > end:
            raise _Corrupt("it is truncated")
        chunks.append((fourcc, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    if not chunks:
        raise _Corrupt("it has no image data")
    return chunks


def _webp_chunk(fourcc: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) & 1 else b""
    return fourcc + struct.pack("<I", len(payload)) + payload + pad


def _webp_vp8x_for_simple(fourcc: bytes, payload: bytes) -> bytes:
    """A VP8X header for a simple (VP8/VP8L-only) file, from the bitstream header."""
    if fourcc == b"VP8 " and len(payload) >= 10 and payload[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", payload[6:10])
        width, height, flags = (width & 0x3FFF), (height & 0x3FFF), 0
    elif fourcc == b"VP8L" and len(payload) >= 5 and payload[0] == 0x2F:
        (bits,) = struct.unpack("<I", payload[1:5])
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        flags = _VP8X_ALPHA if (bits >> 28) & 1 else 0
    else:
        raise _Corrupt("its WebP image data is damaged")
    return bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")


def _webp_read(data: bytes) -> tuple[bytes | None, bytes | None]:
    chunks = _webp_chunks(data)
    exif = next((_strip_exif_header(p) for f, p in chunks if f == b"EXIF"), None)
    xmp = next((p for f, p in chunks if f == b"XMP "), None)
    return exif, xmp


def _webp_write(data: bytes, text: str, keywords: Sequence[str] | None = None) -> bytes:
    chunks = _webp_chunks(data)
    old_exif, old_xmp = _webp_read(data)
    tiff = _tiff_set_description(old_exif or _EMPTY_TIFF, text)
    xmp = _xmp_packet(_xmp_update(old_xmp, text, keywords))

    if chunks[0][0] == b"VP8X":
        vp8x = bytearray(chunks[0][1])
        if len(vp8x) < 10:
            raise _Corrupt("its WebP header is damaged")
    else:
        vp8x = bytearray(_webp_vp8x_for_simple(*chunks[0]))
        chunks.insert(0, (b"VP8X", b""))
    vp8x[0] |= _VP8X_EXIF | _VP8X_XMP
    kept = [(f, p) for f, p in chunks if f not in (b"EXIF", b"XMP ")]

    body = bytearray()
    inserted = False
    for fourcc, payload in kept:
        if not inserted and fourcc not in _WEBP_IMAGE_CHUNKS:
            body += _webp_chunk(b"EXIF", tiff) + _webp_chunk(b"XMP ", xmp)
            inserted = True
        body += _webp_chunk(fourcc, bytes(vp8x) if fourcc == b"VP8X" else payload)
    if not inserted:
        body += _webp_chunk(b"EXIF", tiff) + _webp_chunk(b"XMP ", xmp)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + bytes(body)


# --- dispatch ------------------------------------------------------------------


def _sniff(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == PNG_SIGNATURE:
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return None


_WRITERS = {"JPEG": _jpeg_write, "PNG": _png_write, "WebP": _webp_write}
_READERS = {"JPEG": _jpeg_read, "PNG": _png_read, "WebP": _webp_read}


def _unsupported(path: Path) -> MetadataFormatError:
    kind = path.suffix.lower() or "these"
    return MetadataFormatError(
        path,
        f"Cannot write metadata into {path.name}: {kind} files are not supported "
        "(only JPEG, PNG and WebP); use a sidecar instead.",
    )


def write_description(path: Path, text: str, keywords: Sequence[str] | None = None) -> None:
    """Store ``text`` as the photo's EXIF, XMP and IPTC alt-text description, and ``keywords``
    (unless None, which keeps what is there) as its XMP ``dc:subject``, IPTC Core's Keywords.

    The image data is not re-encoded; other metadata is kept. Raises
    :class:`SaveError` (the file untouched) if the file is read-only, damaged,
    or in a format that cannot carry the caption.
    """
    # Write through a symlink to the photo itself instead of replacing the link.
    path = Path(os.path.realpath(path))
    check_writable(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise save_error(path, exc) from exc
    kind = _sniff(data)
    if kind is None:
        raise _unsupported(path)
    try:
        new = _WRITERS[kind](data, text, keywords)
    except (_Corrupt, struct.error, IndexError) as exc:
        reason = str(exc) if isinstance(exc, _Corrupt) else "its structure is damaged"
        raise SaveError(
            path, f"Cannot write metadata into {path.name}: {reason}; the file was not changed."
        ) from exc
    with atomic_writer(path) as fh:
        fh.write(new)


def read_metadata(path: Path) -> tuple[dict[str, str | None], tuple[str, ...]]:
    """What the file says now, read once: its descriptions (as :func:`read_description` gives
    them) and its XMP ``dc:subject`` keywords. Lenient the same way."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SaveError(path, f"Cannot read {path.name}: {exc.strerror or exc}.") from exc
    result: dict[str, str | None] = {"exif": None, "xmp": None, "iptc": None}
    kind = _sniff(data)
    if kind is None:
        return result, ()
    try:
        exif, xmp = _READERS[kind](data)
    except (_Corrupt, struct.error, IndexError):
        return result, ()
    if exif:
        try:
            result["exif"] = _tiff_get_description(exif)
        except (_Corrupt, struct.error):
            pass
    result["xmp"], result["iptc"] = _xmp_get(xmp)
    return result, _xmp_keywords(xmp)


def read_description(path: Path) -> dict[str, str | None]:
    """What the file says now: ``{"exif": ..., "xmp": ..., "iptc": ...}``.

    ``xmp`` is ``dc:description``, ``iptc`` is ``Iptc4xmpCore:AltTextAccessibility``.
    Lenient: a field that is absent or unreadable (or a format without such
    metadata) reads as ``None``; only a file that cannot be opened raises.
    """
    return read_metadata(path)[0]


def read_keywords(path: Path) -> tuple[str, ...]:
    """The photo's XMP ``dc:subject`` keywords; empty when there are none or they cannot be read."""
    return read_metadata(path)[1]
