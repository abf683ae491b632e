/* BlurHash decoder for the page's placeholders (https://blurha.sh; the encoder is
 * corelane/imaging/blurhash.py, whose decode() this mirrors: tests compare the two pixel by pixel).
 * A hash is base 83: [size flag][max AC][DC: sRGB average, 4 chars][AC: 2 chars each ...].
 * window.corelaneBlurhash.decode(hash, w, h) -> Uint8ClampedArray RGBA, or null when invalid;
 * paint(canvas, hash) draws it on a small canvas (CSS scales it up, smoothly). */
(function () {
  "use strict";
  const DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";
  const VALUE = new Map([...DIGITS].map((ch, i) => [ch, i]));

  function decode83(text) {
    let value = 0;
    for (const ch of text) {
      const d = VALUE.get(ch);
      if (d === undefined) return NaN;
      value = value * 83 + d;
    }
    return value;
  }
  const toLinear = (v) => { const x = v / 255; return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); };
  function toSrgb(v) {
    const x = Math.min(1, Math.max(0, v));
    return Math.floor((x <= 0.0031308 ? x * 12.92 : 1.055 * Math.pow(x, 1 / 2.4) - 0.055) * 255 + 0.5);
  }
  const signPow = (v, e) => Math.sign(v) * Math.pow(Math.abs(v), e);

  /** Size and validity: {nx, ny} or null. */
  function components(hash) {
    if (typeof hash !== "string" || hash.length < 6) return null;
    const flag = decode83(hash[0]);
    if (Number.isNaN(flag)) return null;
    const nx = (flag % 9) + 1, ny = Math.floor(flag / 9) + 1;
    return hash.length === 4 + 2 * nx * ny ? { nx, ny } : null;
  }

  /** The average colour (the DC component) as "#rrggbb", or null. */
  function average(hash) {
    if (!components(hash)) return null;
    const v = decode83(hash.slice(2, 6));
    return Number.isNaN(v) ? null : "#" + v.toString(16).padStart(6, "0");
  }

  function decode(hash, width, height, punch) {
    const size = components(hash);
    if (!size || width < 1 || height < 1) return null;
    const { nx, ny } = size;
    const maxValue = ((decode83(hash[1]) + 1) / 166) * (punch || 1);
    const colours = [];
    const dc = decode83(hash.slice(2, 6));
    colours.push([toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]);
    for (let k = 1; k < nx * ny; k++) {
      const v = decode83(hash.slice(4 + 2 * k, 6 + 2 * k));
      colours.push([Math.floor(v / 361), Math.floor(v / 19) % 19, v % 19].map((q) => signPow((q - 9) / 9, 2) * maxValue));
    }
    if (colours.some((c) => c.some(Number.isNaN))) return null;
    // Separable: the cosines of each column and row once, then a sum per pixel.
    const cosX = [], cosY = [];
    for (let i = 0; i < nx; i++) cosX.push(Float64Array.from({ length: width }, (_, x) => Math.cos((Math.PI * i * x) / width)));
    for (let j = 0; j < ny; j++) cosY.push(Float64Array.from({ length: height }, (_, y) => Math.cos((Math.PI * j * y) / height)));
    const out = new Uint8ClampedArray(width * height * 4);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let r = 0, g = 0, b = 0;
        for (let j = 0; j < ny; j++) {
          const cy = cosY[j][y];
          for (let i = 0; i < nx; i++) {
            const basis = cosX[i][x] * cy, c = colours[i + j * nx];
            r += c[0] * basis; g += c[1] * basis; b += c[2] * basis;
          }
        }
        const o = 4 * (x + y * width);
        out[o] = toSrgb(r); out[o + 1] = toSrgb(g); out[o + 2] = toSrgb(b); out[o + 3] = 255;
      }
    }
    return out;
  }

  /** Draw ``hash`` on ``canvas`` at its aspect (long edge 32 px); false when the hash is invalid. */
  function paint(canvas, hash, aspect) {
    const a = aspect > 0 ? aspect : 4 / 3;
    const w = a >= 1 ? 32 : Math.max(1, Math.round(32 * a));
    const h = a >= 1 ? Math.max(1, Math.round(32 / a)) : 32;
    const pixels = decode(hash, w, h);
    if (!pixels) return false;
    canvas.width = w; canvas.height = h;
    canvas.getContext("2d").putImageData(new ImageData(pixels, w, h), 0, 0);
    return true;
  }

  window.corelaneBlurhash = { decode, average, components, paint };
})();
