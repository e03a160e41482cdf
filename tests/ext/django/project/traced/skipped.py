def untouched():
    return 'plain'
