"""ShapeNet (3D-R2N2 renderings + ShapeNetVox32, Pix2Vox split JSON) for multi-view reconstruction."""
