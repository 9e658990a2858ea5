// A small built-in bitmap font (5 x 7 pixel glyphs, drawn for this project) so
// PNG figures meant to stand alone carry their own labels (results/png.h,
// write_pair_figure). Letters are drawn upper-case; characters without a glyph
// are drawn as a hollow box. Thread-safe: no state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace migvis::font {

inline constexpr int kGlyphWidth = 5, kGlyphHeight = 7, kAdvance = 6;  // pixels at scale 1

// True when `c` has a glyph of its own (letters, digits, space and . , : ; = + - _ / ( ) | # % < > ! ? ' ").
bool has_glyph(char c);
// The text's width in pixels at `scale` (kAdvance * scale per character, no trailing gap).
int text_width(const std::string& text, int scale);

// Draws `text` into an 8-bit image `px` (row-major [height, width, channels])
// with its top-left corner at (x, y), every glyph pixel a scale x scale block of
// value `ink` in every channel; pixels outside the image are clipped.
void draw_text(std::vector<uint8_t>& px, int width, int height, int channels, int x, int y, const std::string& text,
               int scale = 1, uint8_t ink = 0);

}  // namespace migvis::font
