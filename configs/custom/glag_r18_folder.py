# GLAG on your own long-tailed folder tree, both stages in one command (to
# point it at your data, write your own stage files that inherit these:
# configs/custom/_base_/folder_lt.py says how):
#     python tools/train.py configs/custom/glag_r18_folder.py
custom_imports = dict(imports=['glag_mm'], allow_failed_imports=False)
stages = [
    dict(name='stage1', config='graloss_r18_folder.py'),
    dict(name='stage2', config='afg_r18_folder.py', init_from='stage1'),
]
